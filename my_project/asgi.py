"""ASGI v1 entry point: `daphne my_project.asgi:channel_layer`."""
import os

import channels.asgi

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "my_project.settings")
channel_layer = channels.asgi.get_channel_layer()

"""WSGI entry point for gunicorn (plain pages)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "my_project.settings")
application = get_wsgi_application()

# gunicorn imports this in each worker (no --preload): its start-up objects, frozen once loaded.
from my_project.gcfreeze import freeze_startup  # noqa: E402
freeze_startup()

"""WSGI entry point for gunicorn (plain pages)."""
import os

from django.core.wsgi import get_wsgi_application

from my_project.gcfreeze import freeze_startup

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "my_project.settings")
application = get_wsgi_application()

# gunicorn imports this in each worker (no --preload): its start-up objects, frozen once loaded.
freeze_startup()

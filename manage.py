#!/usr/bin/env python
"""Django's command-line utility; a wrong setting stops with one line instead of a traceback."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "my_project.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # load the settings here, where their error can be reported plainly
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        sys.exit("error: %s" % exc)

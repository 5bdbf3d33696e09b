"""`manage.py ctl ARGS` (`make ctl ARGS=...`): supervisorctl for this checkout's deployment."""
import os
import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from ops import supervisor


class Command(BaseCommand):
    help = "Run supervisorctl against the deployment of CHAT_VAR_DIR, e.g. `ctl status`, `ctl restart realtime:*`."

    def add_arguments(self, parser):
        parser.add_argument("args", nargs="*", help="supervisorctl's command and its arguments")

    def handle(self, *args, **options):
        socket_path = settings.CHAT_PATHS.supervisor_socket
        if not supervisor.alive(socket_path):
            if list(args) == ["shutdown"]:  # `make stop` with nothing to stop
                self.stdout.write("nothing is running from %s" % settings.CHAT_PATHS.var)
                return
            raise SystemExit("error: no deployment of %s is running (start it with `make run`)"
                             % settings.CHAT_PATHS.var)
        supervisorctl = os.path.join(os.path.dirname(sys.executable), "supervisorctl")
        conf = os.path.join(settings.BASE_DIR, "supervisord.conf")
        os.execv(supervisorctl, [supervisorctl, "-c", conf, "-s", "unix://" + socket_path] + list(args))

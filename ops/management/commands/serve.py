"""`manage.py serve`: check, start the whole deployment under supervisord, stop it all on a signal."""
import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from ops.deployment import Deployment, die_with_parent
from ops.exceptions import DeploymentError


class Command(BaseCommand):
    help = "Run nginx, daphne, the worker pools and gunicorn under supervisord until interrupted."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=int, default=90, help="seconds to wait for start-up")

    def handle(self, *args, **options):
        # make forwards SIGTERM but not SIGINT to its children; this covers make dying either way.
        die_with_parent()
        stopping = []
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, lambda *_: stopping.append(True))
        deployment = Deployment()
        try:
            deployment.start()
            self.wait(deployment, options["timeout"], stopping)
            self.stdout.write(self.ready_line(deployment))
            self.stdout.flush()
            while not stopping and deployment.process.poll() is None:
                time.sleep(0.2)
            if deployment.process.poll() == 0 and not stopping:  # `make stop` shut it down
                self.stdout.write("supervisord was shut down (`make stop`).")
            elif deployment.process.poll() is not None and not stopping:
                raise DeploymentError("supervisord exited unexpectedly: see %s" % deployment.paths.log)
        except DeploymentError as exc:
            raise SystemExit("error: %s" % exc)
        finally:
            if deployment.process is not None:  # never touch a deployment this command did not start
                self.stdout.write("Stopping every process of the deployment...")
                deployment.stop()
                self.stdout.write("Stopped.")

    @staticmethod
    def ready_line(deployment):
        if settings.CHAT_ROLE == "all":
            return ("Chat is up: http://127.0.0.1:%d  (%s shape, layer %s; %d daphne; workers %d realtime, "
                    "%d background, %d default; logs in %s). Ctrl-C stops it all." % (
                        settings.CHAT_PORT, settings.CHAT_TOPOLOGY, settings.CHAT_LAYER, settings.CHAT_DAPHNE_PROCS,
                        settings.CHAT_WORKERS_REALTIME, settings.CHAT_WORKERS_BACKGROUND,
                        settings.CHAT_WORKERS_DEFAULT, deployment.paths.log))
        # A host of a cluster (`manage.py cluster` waits for this line).
        return "Host up: role %s, %s (logs in %s). Ctrl-C stops it." % (
            settings.CHAT_ROLE, ", ".join(program.name for program in deployment.started), deployment.paths.log)

    def wait(self, deployment, timeout, stopping):
        """wait_ready, but a Ctrl-C during start-up stops at once."""
        original = signal.getsignal(signal.SIGINT)

        def interrupt(*_):
            stopping.append(True)
            raise DeploymentError("interrupted during start-up")
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, interrupt)
        try:
            deployment.wait_ready(timeout)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, original)

"""`manage.py status` (`make status`): every program's state and each channel's depth."""
import datetime
import time

from channels import DEFAULT_CHANNEL_LAYER, channel_layers
from django.conf import settings
from django.core.management.base import BaseCommand

from ops import capacity, releases, supervisor
from ops.cluster import runner
from ops.deployment import executable
from ops.models import WorkerStats


class Command(BaseCommand):
    help = "Show the state of every supervised program and the depth of each channel in the layer."

    def handle(self, *args, **options):
        cluster = runner.describe(runner.root())
        if cluster:  # `make cluster` of this checkout: its hosts (the layer is out of this machine's reach)
            self.stdout.write("\n".join(cluster))
            return
        paths = settings.CHAT_PATHS
        self.stdout.write("Deployment %s on http://127.0.0.1:%d, %s shape, layer %s" % (
            paths.var, settings.CHAT_PORT, settings.CHAT_TOPOLOGY, settings.CHAT_LAYER))
        self.stdout.write(capacity.describe(capacity.current()))
        names = {}
        if not supervisor.alive(paths.supervisor_socket):
            self.stdout.write("  not running (no supervisord at %s): start it with `make run`"
                              % paths.supervisor_socket)
        else:
            for info in sorted(supervisor.processes(supervisor.connect(paths.supervisor_socket)),
                               key=lambda i: i["full"]):
                uptime = ""
                if info["statename"] == supervisor.RUNNING:
                    uptime = "pid %d, %s, up %s" % (info["pid"], executable(info["pid"]), datetime.timedelta(
                        seconds=info["now"] - info["start"]))
                    names[info["pid"]] = info["full"]
                self.stdout.write("  %-40s %-9s %s" % (info["full"], info["statename"], uptime))
        self.workers(names, releases.current()[0])
        self.channels()

    def workers(self, names, current):
        """Counters the workers publish about themselves (ops.health), with a 1 s rate."""
        first = {w.pid: w.consumed for w in WorkerStats.objects.live()}
        time.sleep(1.0)
        rows = list(WorkerStats.objects.live())
        self.stdout.write("Workers (current release %s):" % current)
        self.stdout.write("  %-32s %7s %-10s %-10s %9s %7s %7s %8s" % (
            "process", "pid", "pool", "release", "consumed", "errors", "msg/s", "mean ms"))
        for w in rows:
            mean = 1000.0 * w.busy_seconds / w.consumed if w.consumed else 0.0
            self.stdout.write("  %-32s %7d %-10s %-10s %9d %7d %7d %8.1f" % (
                names.get(w.pid, "(exited)"), w.pid, w.pool, w.release, w.consumed, w.errors,
                w.consumed - first.get(w.pid, w.consumed), mean))

    def channels(self):
        channel_layer = channel_layers[DEFAULT_CHANNEL_LAYER].channel_layer
        try:
            waiting = channel_layer.depths()
        except Exception as exc:  # a server that does not answer, or a layer that cannot tell: a status, not a crash
            self.stdout.write("Channels: cannot read the layer (%s: %s)" % (type(exc).__name__, exc))
            return
        self.stdout.write("Channels (messages waiting / capacity):")
        if not waiting:
            self.stdout.write("  none waiting")
        for name in sorted(waiting):
            self.stdout.write("  %-40s %5d / %d" % (name, waiting[name], channel_layer.get_capacity(name)))

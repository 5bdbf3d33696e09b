"""`manage.py status` (`make status`): every program's state and each channel's depth."""
import datetime

from channels import DEFAULT_CHANNEL_LAYER, channel_layers
from django.conf import settings
from django.core.management.base import BaseCommand

from ops import layer, supervisor
from ops.deployment import Deployment


class Command(BaseCommand):
    help = "Show the state of every supervised program and the depth of each channel in the layer."

    def handle(self, *args, **options):
        deployment = Deployment()
        self.stdout.write("Deployment %s on http://127.0.0.1:%d, layer %s" % (
            settings.VAR_DIR, settings.PORT, settings.LAYER))
        if not supervisor.alive(deployment.socket):
            self.stdout.write("  not running (no supervisord at %s): start it with `make run`" % deployment.socket)
        else:
            for info in sorted(supervisor.processes(supervisor.connect(deployment.socket)),
                               key=lambda i: i["full"]):
                uptime = ""
                if info["statename"] == supervisor.RUNNING:
                    uptime = "pid %d, up %s" % (info["pid"], datetime.timedelta(
                        seconds=info["now"] - info["start"]))
                self.stdout.write("  %-40s %-9s %s" % (info["full"], info["statename"], uptime))
        channel_layer = channel_layers[DEFAULT_CHANNEL_LAYER].channel_layer
        try:
            waiting = layer.depths(channel_layer)
        except Exception as exc:  # a dead Redis is a status, not a crash
            self.stdout.write("Channels: cannot read the layer (%s: %s)" % (type(exc).__name__, exc))
            return
        self.stdout.write("Channels (messages waiting / capacity):")
        if not waiting:
            self.stdout.write("  none waiting")
        for name in sorted(waiting):
            self.stdout.write("  %-40s %5d / %d" % (name, waiting[name], channel_layer.get_capacity(name)))

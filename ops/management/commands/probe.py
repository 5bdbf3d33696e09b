"""`manage.py probe CHANNEL`: ask whichever worker consumes CHANNEL who it is (pool, pid, release)."""
import json
import time

from channels import DEFAULT_CHANNEL_LAYER, channel_layers
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Send a probe on a channel (diag.probe: default pool, background.probe: background pool) " \
           "and print the JSON answer of the worker that took it."

    def add_arguments(self, parser):
        parser.add_argument("channel", choices=["diag.probe", "background.probe"])
        parser.add_argument("--timeout", type=float, default=10.0)

    def handle(self, *args, **options):
        channel_layer = channel_layers[DEFAULT_CHANNEL_LAYER].channel_layer
        reply = channel_layer.new_channel("probe.reply?")
        channel_layer.send(options["channel"], {"reply_channel": reply})
        deadline = time.time() + options["timeout"]
        while time.time() < deadline:
            _, answer = channel_layer.receive([reply], block=True)
            if answer is not None:
                self.stdout.write(json.dumps(answer))
                return
            time.sleep(0.01)
        raise CommandError("no worker answered on %s within %.0f s" % (options["channel"], options["timeout"]))

"""`manage.py runworker`: channels' own command, with every consumer counted and timed (ops.health).

Overrides channels' runworker (ops comes before channels in INSTALLED_APPS); everything else,
including SIGTERM handling, is channels' Worker unchanged; as it stops, the layer lets go of its
connections (the RabbitMQ layer acknowledges the last message, finished by then).
"""
import atexit

from channels import DEFAULT_CHANNEL_LAYER, channel_layers
from channels.management.commands import runworker

from my_project.gcfreeze import freeze_startup
from my_project.routing_include import lighten
from ops.health import Counters


class Command(runworker.Command):

    def handle(self, *args, **options):
        router = lighten(channel_layers[options.get("layer", DEFAULT_CHANNEL_LAYER)].router)
        counters = Counters()
        match = router.match

        def counted_match(message):
            found = match(message)
            return None if found is None else (counters.instrument(found[0]), found[1])
        # Wrapping the router's match is the one seam channels' Worker offers around each consumer.
        router.match = counted_match
        counters.flush()
        counters.heartbeat()
        atexit.register(counters.forget)
        freeze_startup()
        try:
            super(Command, self).handle(*args, **options)
        finally:  # SIGTERM included (channels' Worker exits with SystemExit)
            channel_layers[options.get("layer", DEFAULT_CHANNEL_LAYER)].channel_layer.close()

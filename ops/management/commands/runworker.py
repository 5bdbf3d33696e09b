"""`manage.py runworker`: channels' own command, with every consumer counted and timed (ops.health).

Overrides channels' runworker (ops comes before channels in INSTALLED_APPS); everything else,
including SIGTERM handling, is channels' Worker unchanged; as it stops, the layer lets go of its
connections (the RabbitMQ layer acknowledges the last message, finished by then). Under supervisord,
the message of a chat consumer is held in the process's in-flight record while it runs
(ops/inflight.py), for the reclaimer to send back if the process dies; a worker whose consumer
raised pauses a moment before its next message (FAILED_PAUSE); an outage of the layer's server is
waited out rather than ending the process (OUTAGE_RETRY).
"""
import atexit
import logging
import os
import time

from channels import DEFAULT_CHANNEL_LAYER, channel_layers
from channels.management.commands import runworker
from django.conf import settings

from my_project.gcfreeze import freeze_startup
from my_project.routing_include import lighten
from ops import inflight, programs
from ops.health import EXPECTED, Counters

logger = logging.getLogger(__name__)

# A worker whose consumer just raised waits this long before it takes another message. The chat's
# client resends a failed message at once (server_error), and an idle healthy worker should take the
# resend rather than the one that just failed: a bad release's canary fails fast, so it is idle, and
# first in line for the resend, more often than the workers doing real work.
FAILED_PAUSE = 0.1


def pause_after_failure(consumer):
    """The consumer, followed by FAILED_PAUSE when it raised (its exception still reaches the worker)."""
    def run(message, **kwargs):
        try:
            return consumer(message, **kwargs)
        except EXPECTED:
            raise
        except Exception:
            time.sleep(FAILED_PAUSE)
            raise
    run.__name__ = getattr(consumer, "__name__", "consumer")
    return run


# Seconds between receives while the layer's server is away (a Redis restart). channels' Worker
# exits when its receive raises, and supervisord's restart then costs seconds of Django start-up
# on a busy machine, during which the pool answers nothing (WebSocket handshakes waited 3.6 s
# after a Redis restart of 1.3 s): a worker that waits the outage out takes messages again within
# this long of the server's return.
OUTAGE_RETRY = 0.1


def outlast_outages(receive_many, outages):
    """The layer's receive_many, answering "nothing" (after OUTAGE_RETRY) while the layer's server
    is away instead of raising out of the worker loop."""
    away_since = []

    def receive(channels, block=False):
        try:
            found = receive_many(channels, block=block)
        except outages as exc:
            if not away_since:
                away_since.append(time.time())
                logger.warning("The channel layer is away (%s): the worker tries again every %.1f s",
                               exc, OUTAGE_RETRY)
            time.sleep(OUTAGE_RETRY)
            return None, None
        if away_since:
            logger.info("The channel layer answers again, %.1f s after it went away", time.time() - away_since.pop())
        return found
    return receive


def in_flight_record():
    """This worker's in-flight record when a reclaimer watches this host's workers: run by
    supervisord (which names the process) on a host that starts `reclaim`; else None."""
    name = os.environ.get("SUPERVISOR_PROCESS_NAME")
    if name is None or programs.named("reclaim") not in programs.started_here():
        return None
    try:
        return inflight.Record(settings.CHAT_PATHS.inflight, name)
    except OSError as exc:  # the worker still works, its frames only lose their way back
        logger.warning("No in-flight record for %s (%s): a frame it dies with waits for the client's resend; "
                       "check that %s is writable", name, exc, settings.CHAT_PATHS.inflight)
        return None


class Command(runworker.Command):

    def handle(self, *args, **options):
        router = lighten(channel_layers[options.get("layer", DEFAULT_CHANNEL_LAYER)].router)
        counters = Counters()
        match = router.match

        record = in_flight_record()

        def counted_match(message):
            found = match(message)
            if found is None:
                if record is not None:
                    record.unheld()
                return None
            consumer = counters.instrument(found[0])
            if record is not None and message.channel.name in inflight.RECLAIMABLE:
                consumer = record.around(consumer)
            return pause_after_failure(consumer), found[1]
        # Wrapping the router's match is the one seam channels' Worker offers around each consumer.
        router.match = counted_match
        layer = channel_layers[options.get("layer", DEFAULT_CHANNEL_LAYER)]
        # The worker loop's receive is the seam for the layer's outages, as match is for consumers.
        receive_many = layer.receive_many if record is None else record.receiving(layer.receive_many)
        layer.receive_many = outlast_outages(receive_many, getattr(layer, "OUTAGES", ()))
        counters.flush()
        counters.heartbeat()
        atexit.register(counters.forget)
        if record is not None:
            atexit.register(record.close)
        freeze_startup()
        try:
            super(Command, self).handle(*args, **options)
        finally:  # SIGTERM included (channels' Worker exits with SystemExit)
            channel_layers[options.get("layer", DEFAULT_CHANNEL_LAYER)].channel_layer.close()

"""`manage.py reclaim`: supervisord's event listener that sends a dead worker's message back (ops/inflight.py).

It waits on each worker's record lock, which the kernel lets go of as the worker dies, and looks
again whenever supervisord reports a worker's state change. Run by supervisord as
`[eventlistener:reclaim]`, on the workers' Python: it speaks supervisor's
listener protocol on stdin and stdout (READY, an event, RESULT), so nothing else may write to
stdout: the protocol keeps its own copy of the descriptor and stdout goes to stderr.
"""
import logging
import os
import sys

from channels import DEFAULT_CHANNEL_LAYER, channel_layers
from django.conf import settings
from django.core.management.base import BaseCommand
from supervisor import childutils

from ops import inflight

logger = logging.getLogger(__name__)

# The process state changes after which a worker may be gone with a message in its hands: killed or
# crashed while running (EXITED), killed past stopwaitsecs (STOPPED), dead while starting (BACKOFF,
# FATAL: no pid in those events, so every record of a gone process is looked at each time).
EVENTS = ("PROCESS_STATE_EXITED", "PROCESS_STATE_STOPPED", "PROCESS_STATE_BACKOFF", "PROCESS_STATE_FATAL")


class Command(BaseCommand):
    help = "supervisord event listener: send a dead worker's in-flight message back onto its channel."

    def handle(self, *args, **options):
        protocol = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)  # a stray print must not break the listener protocol
        sys.stdout = sys.stderr
        layer = channel_layers[DEFAULT_CHANNEL_LAYER].channel_layer
        directory = settings.CHAT_PATHS.inflight
        # Records left while this listener was away (restarted, or started after the workers) are
        # unlocked: the first look sends them back.
        reclaimer = inflight.Reclaimer(directory, layer).start()
        logger.info("Watching the in-flight records in %s", directory)
        while True:
            headers, payload = childutils.listener.wait(sys.stdin, protocol)
            if headers["eventname"] in EVENTS:
                event = childutils.get_headers(payload)
                if event.get("groupname") in settings.CHAT_POOLS:
                    # A record made a moment before its worker died may not be watched yet.
                    reclaimer.wake()
            childutils.listener.ok(protocol)

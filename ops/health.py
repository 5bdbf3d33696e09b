"""Per-process consumer counters (messages, exceptions, handling time, release), published to WorkerStats."""
import logging
import os
import threading
import time

from channels.exceptions import ChannelSocketException, ConsumeLater, DenyConnection
from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from . import releases

logger = logging.getLogger(__name__)

FLUSH_EVERY = 1.0  # seconds between writes of the counters
# Control flow the worker loop handles itself; not a consumer failure.
EXPECTED = (ChannelSocketException, ConsumeLater, DenyConnection)


class Counters(object):
    """This process's counters and their periodic publication."""

    def __init__(self):
        self.host = settings.CHAT_NETWORK.identity
        self.pid = os.getpid()
        self.consumed = self.errors = 0
        self.busy = 0.0
        self.started = timezone.now()
        self.flushed_at = 0.0
        self.lock = threading.Lock()

    def instrument(self, consumer):
        """The consumer, counted and timed; its exceptions still reach the worker loop."""
        def counted(message, **kwargs):
            started = time.time()
            failed = False
            try:
                return consumer(message, **kwargs)
            except EXPECTED:
                raise
            except Exception:
                failed = True
                raise
            finally:
                self.record(time.time() - started, failed)
        counted.__name__ = getattr(consumer, "__name__", "consumer")
        return counted

    def record(self, seconds, failed):
        with self.lock:
            self.consumed += 1
            self.errors += int(failed)
            self.busy += seconds

    def flush(self):
        from .models import WorkerStats
        self.flushed_at = time.time()
        with self.lock:
            values = {"host": self.host, "pid": self.pid, "pool": settings.CHAT_POOL,
                      "release": releases.running(), "consumed": self.consumed, "errors": self.errors,
                      "busy_seconds": self.busy, "started": self.started, "updated": timezone.now()}
        try:
            WorkerStats.objects.update_or_create(key="%s:%d" % (self.host, self.pid), defaults=values)
        except DatabaseError as exc:  # health data must never break the consumer path
            logger.warning("Could not publish worker counters: %s", exc)
            close_old_connections()

    def forget(self):
        """Remove this process's row when it exits cleanly (SIGTERM ends in sys.exit, so atexit runs)."""
        from .models import WorkerStats
        try:
            WorkerStats.objects.filter(key="%s:%d" % (self.host, self.pid)).delete()
        except DatabaseError:
            pass  # the row goes stale and is ignored anyway

    def heartbeat(self):
        """Publish every FLUSH_EVERY seconds from a thread of its own, busy or idle: the database
        write stays off the consumer path."""
        def beat():
            while True:
                time.sleep(FLUSH_EVERY)
                if time.time() - self.flushed_at >= FLUSH_EVERY:
                    self.flush()
        threading.Thread(target=beat, name="health-heartbeat", daemon=True).start()

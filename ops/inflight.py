"""Each worker's in-flight record (the message its consumer is running), and the reclaimer that
sends a dead worker's message back onto its channel when supervisord reports the death.

The layer is at-most-once: a worker SIGKILLed (or OOM-killed, or crashing) inside a consumer takes
its message with it, and the client waits its resend timer, while the socket's later frames wait
for the lost one's order (chat.ordering). Here a worker writes the channel and the message into a
small file of its own before running a consumer of a channel whose consumers are idempotent
(RECLAIMABLE), and marks the file empty after: one pwrite each, microseconds, no layer round trip.
The worker holds an exclusive flock on its record for as long as it lives: the kernel lets go of it
the moment the process dies, before supervisord has even reaped it (supervisord notices a child's
death at its next poll timeout, up to a second later). supervisord's event listener (`manage.py
reclaim`, one per host, since each host's supervisord sees only its own workers) waits on each
record's lock and sends the message of a record it gets back onto its channel: the next worker runs
the frame, and the server's dedup by (user, client_id) makes the second run of a frame that had got
further than its store harmless. Only the chat's frames qualify: a page's request (http.request)
run twice could act twice.
"""
import fcntl
import logging
import os
import queue
import struct
import threading
import time

from my_project.layers import codec

logger = logging.getLogger(__name__)

# Channels whose consumers may run a message twice: a chat frame (its message is stored once per
# user and client_id, its ack and broadcast deduped by the clients; a ping), a disconnect (leaving a
# group and deleting a presence row again change nothing).
RECLAIMABLE = frozenset(("websocket.receive", "websocket.disconnect"))
# How many times one message is sent back: a message that kills every worker that runs it (a frame
# that crashes the interpreter) must not go round the pool for ever.
MAX_RECLAIMS = 1
RECLAIMED = "__reclaimed__"  # in the message: how many times it was sent back already
HEADER = struct.Struct("!I")  # the record's length; 0: nothing in flight
EMPTY = HEADER.pack(0)
# Seconds between looks for new records (a restarted worker's). A worker makes its record as it
# starts, long before its first message, so a look this often never misses a held message.
SCAN_EVERY = 0.5


def record_path(directory, process_name, pid):
    """The record of one process: named by supervisord's process name and the pid, so a restarted
    process never overwrites the record its dead predecessor left for the reclaimer."""
    return os.path.join(directory, "%s.%d" % (process_name, pid))


class Record(object):
    """This worker's record: `around(consumer)` holds the message there while the consumer runs."""

    def __init__(self, directory, process_name, pid=None):
        os.makedirs(directory, exist_ok=True)
        self.path = record_path(directory, process_name, os.getpid() if pid is None else pid)
        # Locked before it gets its name (a rename): a reclaimer never finds a record unlocked while
        # its process lives. The descriptor is not inherited (PEP 446), so no child keeps the lock.
        temporary = self.path + ".new"
        self.fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.pwrite(self.fd, EMPTY, 0)
        os.rename(temporary, self.path)
        self._held = None  # the content held now (hold() takes it, clear() lets go)

    def hold(self, channel, content):
        # One write of the length and the body: a process killed meanwhile leaves either the old
        # header or the whole record (a small pwrite to a file is not torn by the writer's death).
        body = codec.pack([channel, content])
        os.pwrite(self.fd, HEADER.pack(len(body)) + body, 0)
        self._held = content

    def clear(self):
        self._held = None
        os.pwrite(self.fd, EMPTY, 0)

    def _try_hold(self, channel, content):
        try:
            self.hold(channel, content)
        except Exception as exc:  # a record is a help to recovery, never a reason not to run
            logger.warning("Cannot hold a message on %s in %s: %s", channel, self.path, exc)

    def receiving(self, receive_many):
        """The layer's receive_many, holding a reclaimable message the moment the layer hands it
        over: a worker killed while channels routes it and builds its Message (the gap that left
        the fault suite's SIGKILLed workers without a bound on p99) leaves it to the reclaimer too.
        The consumer's around() lets go of it; a message no consumer takes, unheld()."""
        def receive(channels, block=False):
            channel, content = receive_many(channels, block=block)
            if channel in RECLAIMABLE:
                self._try_hold(channel, content)
            return channel, content
        return receive

    def unheld(self):
        """The message taken will not be consumed here (no consumer matched): let go of it."""
        if self._held is not None:  # only a reclaimable message is ever held
            self.clear()

    def around(self, consumer):
        """The consumer, with its message held in the record while it runs."""
        def held(message, **kwargs):
            if self._held is not message.content:  # not held since receiving() took it
                self._try_hold(message.channel.name, message.content)
            try:
                return consumer(message, **kwargs)
            finally:
                self.clear()
        held.__name__ = getattr(consumer, "__name__", "consumer")
        return held

    def close(self):
        """A process that exits by itself leaves nothing to reclaim: the record goes before its lock.
        Unless it holds a message: channels' worker exits at once on a SIGTERM while "idle", which
        it still is between the layer's answer and its Message (a rollout's stop landing there lost
        the frame); the record stays for the reclaimer, which sends the message back."""
        if self._held is not None:
            logger.info("Exiting with a message of %s taken: the reclaimer sends it back", self.path)
        else:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        os.close(self.fd)


def records(directory):
    """The paths of the records in `directory` (not the ones still being made)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(os.path.join(directory, name) for name in names if not name.endswith(".new"))


def acquire(path, block=False):
    """A descriptor of the record at `path`, locked: its process is gone. None while the process
    lives (block=False), or when the record is gone or was removed by a clean exit."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if block else fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_nlink == 0:  # removed by its process's clean exit (or taken already)
            os.close(fd)
            return None
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def read(fd):
    """(channel, content) held in a record, or None when it holds nothing."""
    data = os.pread(fd, 1 << 20, 0)
    if len(data) < HEADER.size:
        return None
    length, = HEADER.unpack_from(data)
    if length == 0:
        return None
    if len(data) < HEADER.size + length:  # a record of a larger message: read it whole
        data = os.pread(fd, HEADER.size + length, 0)
    channel, content = codec.unpack(data[HEADER.size:HEADER.size + length])
    return channel, content


def take(path, fd, channel_layer):
    """Send back the message of the record at `path` (its process gone, `fd` locked), remove the
    record; True when a message was sent back."""
    try:
        held = read(fd)
    except ValueError as exc:  # a record cut short: nothing to send
        logger.warning("Cannot read the in-flight record %s (%s): removed", path, exc)
        held = None
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.close(fd)
    if held is None:
        return False
    channel, content = held
    tries = content.get(RECLAIMED, 0)
    if tries >= MAX_RECLAIMS:
        logger.error("A message on %s was sent back %d times and its worker died each time: dropped "
                     "(the client resends it; look for the crash in the workers' logs)", channel, tries)
        return False
    content[RECLAIMED] = tries + 1
    try:
        channel_layer.send(channel, content)
    except Exception as exc:  # a full channel, the layer's server away: the client's resend covers it
        logger.warning("Could not send back the message %s held on %s: %s", os.path.basename(path), channel, exc)
        return False
    logger.info("Sent back the message process %s held on %s", os.path.basename(path), channel)
    return True


def reclaim(directory, channel_layer):
    """Send back the message of every record in `directory` whose process is gone; remove those
    records. Returns how many messages were sent back."""
    sent = 0
    for path in records(directory):
        fd = acquire(path)
        if fd is not None:
            sent += take(path, fd, channel_layer)
    return sent


class Reclaimer(object):
    """The listener's machinery: a thread per record blocks on its lock, and one thread (the only
    one that touches the layer) sends back the message of each record whose lock it got, and looks
    for new records every SCAN_EVERY seconds or when woken (supervisord reported a state change)."""

    SCAN = object()

    def __init__(self, directory, channel_layer):
        self.directory = directory
        self.channel_layer = channel_layer
        self.queue = queue.Queue()
        self.watched = set()
        self.sent = 0

    def start(self):
        threading.Thread(target=self._send, name="reclaim-send", daemon=True).start()
        threading.Thread(target=self._tick, name="reclaim-scan", daemon=True).start()
        return self

    def wake(self):
        self.queue.put(self.SCAN)

    def _tick(self):
        while True:
            self.queue.put(self.SCAN)
            time.sleep(SCAN_EVERY)

    def _wait(self, path):
        try:
            fd = acquire(path, block=True)
        except OSError as exc:
            logger.warning("Cannot watch the in-flight record %s: %s", path, exc)
            fd = None
        self.queue.put((path, fd))

    def _send(self):
        while True:
            item = self.queue.get()
            if item is self.SCAN:
                for path in records(self.directory):
                    if path not in self.watched:
                        self.watched.add(path)
                        threading.Thread(target=self._wait, args=(path,), daemon=True).start()
                continue
            path, fd = item
            self.watched.discard(path)
            if fd is not None:
                self.sent += take(path, fd, self.channel_layer)

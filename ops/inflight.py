"""Each worker's in-flight record (the message its consumer is running), and the reclaimer that
sends a dead worker's message back onto its channel when supervisord reports the death.

The layer is at-most-once: a worker SIGKILLed (or OOM-killed, or crashing) inside a consumer takes
its message with it, and the client waits its resend timer, while the socket's later frames wait
for the lost one's order (chat.ordering). Here a worker writes the channel and the message into a
small file of its own before running a consumer of a channel whose consumers are idempotent
(RECLAIMABLE), and marks the file empty after: one pwrite each, microseconds, no layer round trip.
supervisord's event listener (`manage.py reclaim`, one per host, since each host's supervisord sees
only its own workers) reads the records of processes that are gone and sends their messages back:
the next worker runs the frame, and the server's dedup by (user, client_id) makes the second run of
a frame that had got further than its store harmless. Only the chat's frames qualify: a page's
request (http.request) run twice could act twice.
"""
import glob
import logging
import os
import struct

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


def record_path(directory, process_name, pid):
    """The record of one process: named by supervisord's process name and the pid, so a restarted
    process never overwrites the record its dead predecessor left for the reclaimer."""
    return os.path.join(directory, "%s.%d" % (process_name, pid))


class Record(object):
    """This worker's record: `around(consumer)` holds the message there while the consumer runs."""

    def __init__(self, directory, process_name, pid=None):
        os.makedirs(directory, exist_ok=True)
        self.path = record_path(directory, process_name, os.getpid() if pid is None else pid)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.pwrite(self.fd, EMPTY, 0)

    def hold(self, channel, content):
        # One write of the length and the body: a process killed meanwhile leaves either the old
        # header or the whole record (a small pwrite to a file is not torn by the writer's death).
        body = codec.pack([channel, content])
        os.pwrite(self.fd, HEADER.pack(len(body)) + body, 0)

    def clear(self):
        os.pwrite(self.fd, EMPTY, 0)

    def around(self, consumer):
        """The consumer, with its message held in the record while it runs."""
        def held(message, **kwargs):
            self.hold(message.channel.name, message.content)
            try:
                return consumer(message, **kwargs)
            finally:
                self.clear()
        held.__name__ = getattr(consumer, "__name__", "consumer")
        return held

    def close(self):
        """A process that exits by itself leaves nothing to reclaim."""
        os.close(self.fd)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def read(path):
    """(channel, content) of a record, or None when it holds nothing."""
    with open(path, "rb") as source:
        data = source.read()
    if len(data) < HEADER.size:
        return None
    length, = HEADER.unpack_from(data)
    if length == 0 or len(data) < HEADER.size + length:
        return None
    channel, content = codec.unpack(data[HEADER.size:HEADER.size + length])
    return channel, content


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process took the number: not ours, but not gone
        return True
    return True


def reclaim(directory, channel_layer, is_alive=None):
    """Send back onto its channel the message each gone process held; remove their records.
    Returns how many messages were sent back."""
    is_alive = is_alive or alive
    sent = 0
    for path in sorted(glob.glob(os.path.join(directory, "*.*"))):
        try:
            pid = int(path.rsplit(".", 1)[1])
        except ValueError:
            continue
        if is_alive(pid):
            continue
        try:
            held = read(path)
            os.unlink(path)
        except (OSError, ValueError) as exc:  # a record cut short: nothing to send
            logger.warning("Cannot read the in-flight record %s (%s): removed", path, exc)
            _remove(path)
            continue
        if held is None:
            continue
        channel, content = held
        tries = content.get(RECLAIMED, 0)
        if tries >= MAX_RECLAIMS:
            logger.error("A message on %s was sent back %d times and its worker died each time: dropped "
                         "(the client resends it; look for the crash in the workers' logs)", channel, tries)
            continue
        content[RECLAIMED] = tries + 1
        try:
            channel_layer.send(channel, content)
        except Exception as exc:  # a full channel, the layer's server away: the client's resend covers it
            logger.warning("Could not send back the message %s held on %s: %s", os.path.basename(path),
                           channel, exc)
            continue
        logger.info("Sent back the message process %s held on %s", os.path.basename(path), channel)
        sent += 1
    return sent


def _remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass

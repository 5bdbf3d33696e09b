"""The embedded channel layer: asgi_ipc's shared memory, crash-safe and with a blocking receive."""
import collections
import contextlib
import fcntl
import glob
import logging
import os
import pickle
import random
import shutil
import threading
import time

import asgi_ipc
from asgi_ipc.store import ChannelMemoryStore, GroupMemoryStore
from asgiref.base_layer import BaseChannelLayer

from . import codec
from .base import CHANNEL, GROUP, GROUP_ONCE, ProjectLayer
from .doorbell import Doorbell

logger = logging.getLogger(__name__)
SHM_DIR = "/dev/shm"


def segment(prefix, name):
    """The shared memory name of one of a layer's stores ("messages", "groups"), as upstream names it."""
    return "%s-%s" % (prefix, name)


def remove_segments(prefix):
    """Unlink the shared memory, semaphores, lock files and doorbell of every IPC layer (upstream's
    or this module's) named by `prefix`, whoever created them."""
    for path in glob.glob(os.path.join(SHM_DIR, segment(prefix, "*"))) + \
            glob.glob(os.path.join(SHM_DIR, "sem." + segment(prefix, "*"))):
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
            continue
        try:
            os.unlink(path)
        except OSError:
            pass


class IPCQuestions(ProjectLayer):
    """The project's questions, answered for asgi_ipc's stores (upstream's classes and ours)."""

    def remove_storage(self):
        remove_segments(self.prefix)

    def depths(self):
        now = time.time()
        value = self.message_store.get_value()  # one pickled dict of lists of (message, expiry)
        return {name: sum(1 for _, expiry in items if expiry >= now)
                for name, items in value.items() if items}


class CrashSafeStoreMixin(object):
    """asgi_ipc's shared-memory store with a lock the kernel releases when its holder dies.

    Upstream guards the pickled dict in shared memory with a POSIX semaphore. A process killed while
    holding it (a SIGKILLed worker, the OOM killer) never releases it: every other process waits
    10 s per operation and then fails with "Semaphore appears to be deadlocked", for good. flock()
    locks die with their process. The pickle is built first and copied in one piece, and a torn one
    (a kill mid-copy) is reported and reset instead of failing every later operation: the layer is
    at-most-once anyway, and the chat's clients resend what was not acked.
    """

    def __init__(self, path, memory_size):
        super(CrashSafeStoreMixin, self).__init__(path, memory_size)
        self.lock_path = os.path.join(SHM_DIR, "%s.lock" % path.strip("/"))
        self.lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        self.thread_lock = threading.Lock()  # flock does not exclude threads sharing one descriptor

    @contextlib.contextmanager
    def locked(self):
        with self.thread_lock:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self.lock_fd, fcntl.LOCK_UN)

    def _load(self):
        self.mmap.seek(0)
        if not self.mmap.read_byte():
            return self.DEFAULT_FACTORY()
        self.mmap.seek(0)
        try:
            return pickle.load(self.mmap)
        except EOFError:
            return self.DEFAULT_FACTORY()
        except Exception as exc:  # a torn write: start over rather than fail forever
            logger.error("IPC store %s was corrupt (%s); resetting it", self.path, exc)
            return self.DEFAULT_FACTORY()

    def _dump(self, value):
        data = pickle.dumps(value, protocol=2)
        if len(data) > len(self.mmap):
            raise RuntimeError("IPC store %s is full (%d bytes): raise its memory size" % (
                self.path, len(self.mmap)))
        self.mmap[:len(data)] = data

    @contextlib.contextmanager
    def mutate_value(self):
        with self.locked():
            value = self._load()
            yield value
            self._dump(value)

    def get_value(self):
        with self.locked():
            return self._load()

    def flush_all(self):
        with self.locked():
            self._dump(self.DEFAULT_FACTORY())


class ChannelStore(CrashSafeStoreMixin, ChannelMemoryStore):
    """Channel lists in shared memory, crash-safe, each layer operation in one locked pass.

    Upstream locks, unpickles and re-pickles the whole store once per channel looked at: a send
    twice (length, then append), a worker's receive once per channel it listens on (a dozen), a
    group send twice per member. Here each is one pass, and a look that finds nothing writes
    nothing back.
    """

    @staticmethod
    def _live(value, name, now):
        """The channel's unexpired items (dropping expired ones from value)."""
        items = value.get(name)
        if items and items[0][1] < now:
            items = [entry for entry in items if entry[1] >= now]
            if items:
                value[name] = items
            else:
                del value[name]
        return items or []

    def append_within(self, entries, expiry):
        """Append each (name, item, capacity) whose channel is below capacity; the indexes of the
        entries that were full."""
        full = []
        now = time.time()
        with self.mutate_value() as value:
            for index, (name, item, capacity) in enumerate(entries):
                if len(self._live(value, name, now)) >= capacity:
                    full.append(index)
                else:
                    value.setdefault(name, []).append((item, expiry))
        return full

    def pop_first(self, names, limit=1):
        """(name, [up to limit items]) from the first of names holding a live item, or None."""
        now = time.time()
        with self.locked():
            value = self._load()
            dropped = False  # expired items removed on the way
            for name in names:
                if not value.get(name):
                    continue
                live = self._live(value, name, now)
                if not live:
                    dropped = True
                    continue
                taken, rest = live[:limit], live[limit:]
                if rest:
                    value[name] = rest
                else:
                    del value[name]
                self._dump(value)
                return name, [item for item, _ in taken]
            if dropped:
                self._dump(value)
            return None


class GroupStore(CrashSafeStoreMixin, GroupMemoryStore):
    """Group memberships in shared memory, crash-safe."""

    def take_members(self, groups):
        """{group: its live members} for {group: empty it?}, in one locked pass."""
        out, now = {}, time.time()
        with self.mutate_value() as value:
            for name, empty in groups.items():
                members = value.get(name) or {}
                live = {member: expiry for member, expiry in members.items() if expiry >= now}
                out[name] = list(live)
                if empty or not live:
                    value.pop(name, None)
                elif len(live) != len(members):
                    value[name] = live
        return out


class IPCChannelLayer(IPCQuestions, asgi_ipc.IPCChannelLayer):
    """asgi_ipc, crash-safe (see CrashSafeStoreMixin), one store pass per operation (see
    ChannelStore), and woken by a Doorbell instead of polling: a blocking receive for runworker
    and the "twisted" extension for daphne, which then stops polling every 50 ms."""

    extensions = ["flush", "groups", "twisted", "send_batch", "cross_python"]

    def __init__(self, prefix="asgi", expiry=60, group_expiry=86400, capacity=10, channel_capacity=None,
                 message_memory=100 * 1024 * 1024, group_memory=20 * 1024 * 1024, block_timeout=1.0,
                 reply_batch=100):
        # Upstream's __init__ would map the same memory a second time with its own stores.
        BaseChannelLayer.__init__(self, expiry=expiry, group_expiry=group_expiry, capacity=capacity,
                                  channel_capacity=channel_capacity)
        self.prefix = prefix
        self.message_store = ChannelStore(segment(prefix, "messages"), message_memory)
        self.group_store = GroupStore(segment(prefix, "groups"), group_memory)
        self.doorbell = Doorbell(os.path.join(SHM_DIR, segment(prefix, "doorbell")))
        self.block_timeout = block_timeout  # a blocking receive returns empty after this (seconds)
        self.reply_batch = reply_batch  # process-local messages daphne takes per store pass
        self._local = collections.deque()  # ...and keeps here: nobody else may read them

    def _pack(self, channel, message):
        """(list name, packed message) as upstream stores it."""
        if "!" in channel:
            message = dict(message.items())
            message["__asgi_channel__"] = channel
            channel = self.non_local_name(channel)
        return channel, codec.pack(message)

    def _unpack(self, name, item):
        message = codec.unpack(item)
        return message.pop("__asgi_channel__", name), message

    def send(self, channel, message):
        self.assert_sendable(channel, message)
        name, item = self._pack(channel, message)
        if self.message_store.append_within([(name, item, self.get_capacity(channel))],
                                            time.time() + self.expiry):
            raise self.ChannelFull()
        self.doorbell.ring({name})

    def send_group(self, group, message):
        self.send_batch([(GROUP, group, message)])

    def send_batch(self, sends):
        """One pass over the group store and one over the messages, however many sends."""
        groups = {}
        for kind, name, _ in sends:
            if kind != CHANNEL:
                self.assert_group(kind, name)
                groups[name] = groups.get(name, False) or kind == GROUP_ONCE
        members = self.group_store.take_members(groups) if groups else {}
        entries, channel_sends = [], {}
        for kind, name, message in sends:
            if kind == CHANNEL:
                self.assert_sendable(name, message)
                channel_sends[len(entries)] = name
                entries.append(self._pack(name, message) + (self.get_capacity(name),))
            else:
                entries.extend(self._pack(channel, message) + (self.get_capacity(channel),)
                               for channel in members[name])
        if not entries:
            return []
        full = self.message_store.append_within(entries, time.time() + self.expiry)
        self.doorbell.ring({name for name, _, _ in entries})
        return [channel_sends[index] for index in full if index in channel_sends]

    def receive(self, channels, block=False):
        if not channels:
            return None, None
        channels = list(channels)
        assert all(self.valid_channel_name(channel, receive=True) for channel in channels), \
            "one or more channel names invalid"
        deadline = time.time() + self.block_timeout
        while True:
            if block:
                self.doorbell.drain(channels)  # before looking, so a send after the look still wakes us
            random.shuffle(channels)
            found = self.message_store.pop_first(channels)
            if found:
                return self._unpack(found[0], found[1][0])
            remaining = deadline - time.time()
            if not block or remaining <= 0:
                return None, None
            self.doorbell.wait(channels, remaining)

    def receive_twisted(self, channels):
        """daphne's reader: a Deferred firing with (channel, message) once one arrives, or
        (None, None) after block_timeout. daphne reads only its own process-local reply channel,
        so it takes up to reply_batch replies per store pass (a broadcast to the 500 sockets
        of one daphne is then a handful of passes, not 500)."""
        from twisted.internet import defer, reactor
        if self._local:
            return defer.succeed(self._local.popleft())
        result = defer.Deferred()
        deadline = time.time() + self.block_timeout

        def look():
            self.doorbell.drain(channels)
            channels_now = list(channels)
            random.shuffle(channels_now)
            limit = self.reply_batch if all("!" in c for c in channels_now) else 1
            found = self.message_store.pop_first(channels_now, limit=limit)
            if found:
                self._local.extend(self._unpack(found[0], item) for item in found[1])
                result.callback(self._local.popleft())
            elif time.time() >= deadline:
                result.callback((None, None))
            else:
                _Readable(reactor, self.doorbell.listen(channels), deadline - time.time(), look)
        look()
        return result


class _Readable(object):
    """Calls back once when a socket becomes readable or after timeout, in the twisted reactor."""

    def __init__(self, reactor, sock, timeout, callback):
        self.reactor, self.sock, self.callback = reactor, sock, callback
        self.timer = reactor.callLater(timeout, self._fire)
        reactor.addReader(self)

    def _fire(self):
        self.reactor.removeReader(self)
        if self.timer.active():
            self.timer.cancel()
        self.callback()

    def fileno(self):
        return self.sock.fileno()

    def doRead(self):
        self._fire()

    def connectionLost(self, reason):
        self._fire()

    def logPrefix(self):
        return "ipc-doorbell"

"""The embedded channel layer: asgi_ipc's shared memory, crash-safe and with a blocking receive."""
import collections
import contextlib
import fcntl
import glob
import logging
import marshal
import os
import pickle
import random
import shutil
import struct
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


class ChannelPasses(object):
    """Channel lists in shared memory, each layer operation in one locked pass.

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


class GroupPasses(object):
    """Group memberships in shared memory, one locked pass per group send."""

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


# The stores' format. Up to this version the layer kept one pickle per store in segments named
# "<prefix>-messages" and "<prefix>-groups"; it now keeps them marshalled (see MarshalStoreMixin) in
# "<prefix>-messages-v2" and "<prefix>-groups-v2", so the two formats never share a segment. A rollout
# restarts the workers on new code while daphne keeps the old: IPCChannelLayer keeps reading the
# old segments while they hold anything and writes there what an old-code process waits for.
# A rollback (old workers again) goes through the same door once they listen, but what was queued
# in the new segments before, and joins made while no old worker was around, stay unseen by them:
# those messages expire (at-most-once: clients resend what was not acked) and the joins recur
# with the next connection.
FORMAT = "v2"
FORMAT_TAG = "~ipc-format-" + FORMAT  # announced on the doorbell; "~" is in no channel name
LEGACY_EMPTY = pickle.dumps({}, protocol=2)  # what the old code leaves in an empty store


class MarshalStoreMixin(CrashSafeStoreMixin):
    """A store marshalled (not pickled) into two alternating slots of its segment.

    Pickle protocol 2 has no bytes type: each stored message went through codecs.encode on dump
    and back on load, ~500 µs a pass for a few hundred queued messages, the larger part of a chat
    message's CPU (worker and daphne alike). marshal does the same dict in ~10 µs and reads what
    another CPython wrote: its format changes across versions for code objects only, and
    version 2 writes dict, list, tuple, str, bytes and float the same on 3.7 and 3.13
    (tests/test_ipc_store.py checks both ways).

    Each pass writes the value into the slot it did not read, framed as [generation, length]
    value [generation], and only then is that slot the newer one: a process SIGKILLed mid-copy
    leaves the previous value whole (the frame does not match), where the pickled store lost
    everything. The lock is the same kernel-released flock.
    """

    FRAME = struct.Struct("<QQ")  # generation, length of the value
    END = struct.Struct("<Q")  # generation again, after the value, scrambled (SEAL) so that
    SEAL = 0x9E3779B97F4A7C15  # stale value bytes where a torn frame says it ends never match it
    MARSHAL_VERSION = 2  # no references: the simplest form, the same on every CPython 3

    def __init__(self, path, memory_size):
        super(MarshalStoreMixin, self).__init__(path, memory_size)
        self.slot_size = len(self.mmap) // 2
        self._read = (1, 0)  # (slot, generation) of the value last loaded: a dump takes the other

    def _newest(self):
        """(slot, generation, length) of the newer whole slot; generation 0 when neither is."""
        best = (1, 0, 0)
        for slot in (0, 1):
            base = slot * self.slot_size
            generation, length = self.FRAME.unpack_from(self.mmap, base)
            end = base + self.FRAME.size + length
            if generation > best[1] and end + self.END.size <= base + self.slot_size and \
                    self.END.unpack_from(self.mmap, end)[0] == generation ^ self.SEAL:
                best = (slot, generation, length)
        return best

    def _load(self):
        slot, generation, length = self._newest()
        self._read = (slot, generation)
        if not generation:
            return self.DEFAULT_FACTORY()
        start = slot * self.slot_size + self.FRAME.size
        try:
            return marshal.loads(self.mmap[start:start + length])
        except (EOFError, ValueError, TypeError) as exc:  # framed whole yet unreadable: start over
            logger.error("IPC store %s was corrupt (%s); resetting it", self.path, exc)
            return self.DEFAULT_FACTORY()

    def _dump(self, value):
        data = marshal.dumps(value, self.MARSHAL_VERSION)
        if self.FRAME.size + len(data) + self.END.size > self.slot_size:
            raise RuntimeError("IPC store %s is full (%d bytes a slot): raise its memory size" % (
                self.path, self.slot_size))
        read_slot, generation = self._read
        slot, generation = 1 - read_slot, generation + 1
        base = slot * self.slot_size
        end = base + self.FRAME.size + len(data)
        self.FRAME.pack_into(self.mmap, base, generation, len(data))
        self.mmap[base + self.FRAME.size:end] = data
        self.END.pack_into(self.mmap, end, generation ^ self.SEAL)  # the slot counts from here on
        self._read = (slot, generation)

    def flush_all(self):
        with self.locked():
            self._load()  # which slot is current, so the empty value goes to the other
            self._dump(self.DEFAULT_FACTORY())


class LegacyStoreMixin(CrashSafeStoreMixin):
    """A store in the format before FORMAT (one pickle), read and written beside old-code processes."""

    def holds_anything(self):
        """Whether the store may hold anything, without the lock: it is empty for good once no
        old-code process is left, and then this is all a pass costs. A send rings its receivers
        after writing, and they look after draining their doorbell, so a look never misses a send
        it was woken for."""
        head = self.mmap[:len(LEGACY_EMPTY)]
        return head[:1] != b"\0" and head != LEGACY_EMPTY


class ChannelStore(ChannelPasses, MarshalStoreMixin, ChannelMemoryStore):
    """Channel lists in shared memory, marshalled, crash-safe, one pass per layer operation."""


class GroupStore(GroupPasses, MarshalStoreMixin, GroupMemoryStore):
    """Group memberships in shared memory, marshalled, crash-safe."""


class LegacyChannelStore(ChannelPasses, LegacyStoreMixin, ChannelMemoryStore):
    """The channel lists of old-code processes (pickled), during a rollout."""


class LegacyGroupStore(GroupPasses, LegacyStoreMixin, GroupMemoryStore):
    """The group memberships of old-code processes (pickled), during a rollout."""


class IPCChannelLayer(IPCQuestions, asgi_ipc.IPCChannelLayer):
    """asgi_ipc, crash-safe (see CrashSafeStoreMixin), marshalled (see MarshalStoreMixin; the
    previous format is still served to old-code processes during a rollout, see FORMAT), one store
    pass per operation (see ChannelPasses), and woken by a Doorbell instead of polling: a blocking
    receive for runworker and the "twisted" extension for daphne, which then stops polling every
    50 ms."""

    extensions = ["flush", "groups", "twisted", "send_batch", "cross_python", "receive_batch", "machine_local"]

    def __init__(self, prefix="asgi", expiry=60, group_expiry=86400, capacity=10, channel_capacity=None,
                 message_memory=100 * 1024 * 1024, group_memory=20 * 1024 * 1024, block_timeout=1.0,
                 reply_batch=100):
        # Upstream's __init__ would map the same memory a second time with its own stores.
        BaseChannelLayer.__init__(self, expiry=expiry, group_expiry=group_expiry, capacity=capacity,
                                  channel_capacity=channel_capacity)
        self.prefix = prefix
        self.message_store = ChannelStore(segment(prefix, "messages-" + FORMAT), message_memory)
        self.group_store = GroupStore(segment(prefix, "groups-" + FORMAT), group_memory)
        self.legacy_messages = LegacyChannelStore(segment(prefix, "messages"), message_memory)
        self.legacy_groups = LegacyGroupStore(segment(prefix, "groups"), group_memory)
        self.doorbell = Doorbell(os.path.join(SHM_DIR, segment(prefix, "doorbell")), tag=FORMAT_TAG)
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

    def _append(self, entries):
        """Append (name, item, capacity) entries, each to the store its readers read: the old one
        for a channel an old-code process waits on (daphne, until it restarts after a rollout),
        this format's otherwise. The indexes of the entries whose channel was full."""
        old_readers = self.doorbell.untagged({name for name, _, _ in entries})
        expiry = time.time() + self.expiry
        if not old_readers:
            return self.message_store.append_within(entries, expiry)
        full = []
        for store, wanted in ((self.legacy_messages, True), (self.message_store, False)):
            indexes = [index for index, entry in enumerate(entries) if (entry[0] in old_readers) == wanted]
            if indexes:
                full.extend(indexes[index] for index in store.append_within(
                    [entries[index] for index in indexes], expiry))
        return sorted(full)

    def _pop(self, names, limit=1):
        """pop_first from the old store while it holds anything (its messages are the older), then
        from this format's."""
        if self.legacy_messages.holds_anything():
            found = self.legacy_messages.pop_first(names, limit=limit)
            if found:
                return found
        return self.message_store.pop_first(names, limit=limit)

    def send(self, channel, message):
        self.assert_sendable(channel, message)
        name, item = self._pack(channel, message)
        if self._append([(name, item, self.get_capacity(channel))]):
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
        members = self._take_members(groups) if groups else {}
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
        full = self._append(entries)
        self.doorbell.ring({name for name, _, _ in entries})
        return [channel_sends[index] for index in full if index in channel_sends]

    def old_code_workers(self):
        """Whether a process of the code before FORMAT waits on a channel that is not process-local
        (a worker: daphne waits on its own "!" channels only), i.e. a rollout is under way. The
        channel sessions are then kept where that code reads them too."""
        return any(wants is None or any("!" not in name for name in wants - {FORMAT_TAG})
                   for wants in self.doorbell.untagged_wants())

    def _take_members(self, groups):
        """take_members from this format's store and, while it holds anything, the old one."""
        members = self.group_store.take_members(groups)
        if self.legacy_groups.holds_anything():
            for name, old in self.legacy_groups.take_members(groups).items():
                members[name] = list(collections.OrderedDict.fromkeys(members[name] + old))
        return members

    def group_add(self, group, channel):
        """Join this format's store, and the old one too while an old-code worker is around: its
        group sends read only that (an old daphne sends to no group)."""
        assert self.valid_group_name(group), "Invalid group name"
        expiry = time.time() + self.group_expiry
        self.group_store.add(group, channel, expiry)
        if self.old_code_workers():
            self.legacy_groups.add(group, channel, expiry)

    def group_discard(self, group, channel):
        assert self.valid_group_name(group), "Invalid group name"
        self.group_store.discard(group, channel)
        if self.legacy_groups.holds_anything():
            self.legacy_groups.discard(group, channel)

    def group_channels(self, group):
        assert self.valid_group_name(group), "Invalid group name"
        return self._take_members({group: False})[group]

    def flush(self):
        for store in (self.message_store, self.group_store, self.legacy_messages, self.legacy_groups):
            store.flush_all()

    def depths(self):
        now, counts = time.time(), collections.Counter()
        for store in (self.legacy_messages, self.message_store):
            for name, items in store.get_value().items():
                counts[name] += sum(1 for _, expiry in items if expiry >= now)
        return {name: count for name, count in counts.items() if count}

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
            found = self._pop(channels)
            if found:
                return self._unpack(found[0], found[1][0])
            remaining = deadline - time.time()
            if not block or remaining <= 0:
                return None, None
            self.doorbell.wait(channels, remaining)

    def receive_batch(self, channel, limit):
        """Up to `limit` messages of one channel in one store pass, without waiting: [message]."""
        assert self.valid_channel_name(channel, receive=True), "channel name invalid"
        found = self._pop([channel], limit=limit)
        return [self._unpack(found[0], item)[1] for item in found[1]] if found else []

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
            found = self._pop(channels_now, limit=limit)
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

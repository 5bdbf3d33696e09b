"""The Redis channel layer: asgi_redis sharded by channel, one round trip per operation."""
import itertools
import logging
import random
import time
from urllib.parse import urlsplit

import asgi_redis
import redis
from asgi_redis.twisted_utils import defer

from . import codec
from .base import CHANNEL, GROUP, LayerUnavailable, ProjectLayer, send_each
from .redis_reader import TwistedReader
from .redis_scripts import Scripts, split_item

logger = logging.getLogger(__name__)


class RedisQuestions(ProjectLayer):
    """The project's questions, answered for asgi_redis' servers (upstream's class and ours)."""

    CHECK_TIMEOUT = 2  # seconds a server may take to answer the start-up check

    def check(self):
        for url, connection in zip(self.hosts, self._connection_list):
            pool = connection.connection_pool
            probe = redis.StrictRedis(connection_pool=redis.ConnectionPool(
                connection_class=pool.connection_class,
                **dict(pool.connection_kwargs, socket_connect_timeout=self.CHECK_TIMEOUT,
                       socket_timeout=self.CHECK_TIMEOUT)))
            try:
                probe.ping()
            except redis.RedisError as exc:
                raise LayerUnavailable(
                    "cannot reach Redis at %s (%s): start it, fix CHAT_REDIS_URL, or leave it unset "
                    "to run a local redis-server" % (_without_password(url), exc))
            finally:
                probe.connection_pool.disconnect()

    def depths(self):
        found = {}
        for connection in self._connection_list:  # one list per channel, on its shard
            for key in connection.scan_iter(match=self.prefix + "*", count=1000):
                if connection.type(key) == b"list":
                    name = key.decode()[len(self.prefix):]
                    found[name] = found.get(name, 0) + connection.llen(key)
        return found


def _without_password(url):
    password = urlsplit(url).password
    return url if password is None else url.replace(":%s@" % password, ":***@", 1)


class RedisChannelLayer(RedisQuestions, asgi_redis.RedisChannelLayer):
    """asgi_redis where every channel lives on one shard, and a receive looks at all of them.

    Upstream spreads a normal channel's messages round-robin over the shards and lets each receive
    look at one shard only: with several Redis servers a message sits unseen while a worker polls or
    blocks on another shard (up to its 5 s BLPOP, past daphne's 5 s WebSocket handshake limit), a
    channel's capacity is multiplied by the number of shards, and FIFO order is lost. asgiref's
    conformance suite fails on it. Here each channel is placed by a consistent hash of its name (as
    upstream already does for process-local channels), a receive first sweeps every shard holding
    one of its channels without blocking, and only then blocks on one of them for `blpop_timeout`
    (a setting here; upstream has it as a fixed class attribute). Messages live in the lists
    themselves (redis_scripts.py) and every operation is one round trip: a script for a send, a
    group send per shard and a pop that must not block; BLPOP for one that may. daphne reads with
    a TwistedReader (redis_reader.py). Subclassed rather than patched: the library stays as
    installed. Every process of a deployment must use this class: the list items are not upstream's.
    """

    extensions = asgi_redis.RedisChannelLayer.extensions + ["send_batch", "values", "cross_python"]
    # Seconds daphne's reader waits for a shard's answer before it drops the connection; None: as long
    # as the connection lives (a server of the deployment's own, or one whose address never changes).
    reader_reply_timeout = None

    def __init__(self, blpop_timeout=None, reply_batch=100, **kwargs):
        super(RedisChannelLayer, self).__init__(**kwargs)
        if blpop_timeout is not None:
            self.blpop_timeout = blpop_timeout
        self._block_rotation = itertools.count()
        self.scripts = Scripts(self)
        self._capacities = {}  # list name -> capacity, for LUA_BATCH's group members
        self._reader = TwistedReader(self, batch=reply_batch)

    # ---- messages in lists ----------------------------------------------------------------------

    def serialize(self, message):
        value = codec.pack(message)
        return self.crypter.encrypt(value) if self.crypter else value

    def deserialize(self, message):
        if self.crypter:
            message = self.crypter.decrypt(message, self.expiry + 10)  # as upstream
        return codec.unpack(message)

    def _unpack(self, list_key, item):
        """(channel, message), or None when the message expired while it waited."""
        expires, local, body = split_item(item)
        if expires < time.time():
            return None
        if local:
            channel = local.decode("utf8")
        else:
            if isinstance(list_key, bytes):
                list_key = list_key.decode("utf8")
            channel = list_key[len(self.prefix):]
        try:
            return channel, self.deserialize(body)
        except Exception as exc:  # not ours (another layer class on the same prefix) or torn
            logger.warning("Dropped an unreadable message on %s: %s", channel, exc)
            return None

    def _list(self, channel):
        """The list holding a channel's messages: a process-local channel's is its non-local part's."""
        return self.non_local_name(channel) if "!" in channel else channel

    def _stat_key(self, channel, stat):
        return "%s%s:%s" % (self.stats_prefix, channel, stat)

    def _send_many(self, index, targets):
        """Send to [(channel, serialized message)] on one shard in one round trip; the positions
        (from 1) of the full ones."""
        return self.scripts.send(self.connection(index), [
            (channel, body, self.get_capacity(self._list(channel))) for channel, body in targets])

    # ---- ASGI API -------------------------------------------------------------------------------

    def send(self, channel, message):
        self.assert_sendable(channel, message)
        if self._send_many(self.consistent_hash(self._list(channel)), [(channel, self.serialize(message))]):
            raise self.ChannelFull()

    def group_channels(self, group):
        members = self.scripts.members(self.connection(self.consistent_hash(group)),
                                       self._group_key(group), int(time.time()) - self.group_expiry)
        return [member.decode("utf8") for member in members]

    def send_group(self, group, message):
        """Every member below capacity gets it, the full ones drop (the groups extension allows
        that): one round trip with one server, whatever the group's size (upstream: two per
        member); with several, one to read the members and one per shard they are on."""
        self.assert_group(GROUP, group)
        if self.ring_size == 1:
            self.send_batch([(GROUP, group, message)])
            return
        by_shard, body = {}, self.serialize(message)
        for channel in self.group_channels(group):
            by_shard.setdefault(self.consistent_hash(self._list(channel)), []).append((channel, body))
        for index, targets in by_shard.items():
            self._send_many(index, targets)

    def send_batch(self, sends):
        """One round trip on a one-server layer (the group members are read inside the script)
        instead of one or two per send; with several servers, one per send as before."""
        if self.ring_size > 1:
            return send_each(self, sends)
        for _ in range(3):  # group members on lists not seen before: price them and try again
            full, unknown = self._batch_script(sends)
            if not unknown:
                return [sends[int(index) - 1][1] for index in full]
            for name in unknown:
                name = name.decode("utf8")
                self._capacities[name] = self.get_capacity(name)
        return send_each(self, sends)  # members keep joining on new lists: one at a time

    def _batch_script(self, sends):
        # Every call carries the table: a few entries (one per daphne) normally. Lists of daphnes
        # long gone, or groups of many plain channels, would grow it: start over (one more round
        # trip re-prices the lists in use).
        if len(self._capacities) > 200:
            self._capacities.clear()
        entries = []
        for kind, name, message in sends:
            if kind == CHANNEL:
                self.assert_sendable(name, message)
                entries.append((kind, name, self.serialize(message), self.get_capacity(self._list(name))))
            else:
                self.assert_group(kind, name)
                entries.append((kind, self._group_key(name), self.serialize(message), 0))
        return self.scripts.batch(self.connection(0), int(time.time()) - self.group_expiry,
                                  self._capacities, entries)

    def _receive_list_names(self, channels):
        """{shard index: [list keys]} for the channels, each on the shard its name hashes to."""
        if not channels:
            return None
        channels = list(channels)
        assert all(self.valid_channel_name(c, receive=True) for c in channels), \
            "One or more channel names invalid"
        indexes = {}
        for channel in channels:
            indexes.setdefault(self.consistent_hash(channel), []).append(self.prefix + channel)
        return indexes

    def receive(self, channels, block=False):
        indexes = self._receive_list_names(channels)
        if indexes is None:
            return None, None
        shards = list(indexes.items())
        random.shuffle(shards)
        if not (block and len(shards) == 1):  # one shard and blocking: BLPOP returns at once anyway
            for index, list_names in shards:
                found = self._pop(index, list_names, block=False)
                if found:
                    return found
        if block:
            index, list_names = shards[next(self._block_rotation) % len(shards)]
            found = self._pop(index, list_names, block=True)
            if found:
                return found
        return None, None

    def _pop(self, index, list_names, block):
        """(channel, message) from one shard; None if there is none (within blpop_timeout)."""
        connection = self.connection(index)
        random.shuffle(list_names)
        if not block:
            result = self.scripts.pop(connection, list_names)
            return result and self._unpack(result[0], result[1])
        # BLPOP answers at once when one of the lists holds something: a blocking receive needs no
        # look first (one round trip per message instead of two for a worker that finds nothing).
        # An expired message is dropped by _unpack and the wait goes on.
        while True:
            popped = connection.blpop(list_names, timeout=self.blpop_timeout)
            if not popped:
                return None
            found = self._unpack(popped[0], popped[1])
            if found:
                return found

    def _count_channel_stats(self, channel, connections):
        """Upstream's statistics, with the oldest message's age read from its stamp (upstream asks
        its body key's TTL)."""
        statistics = super(RedisChannelLayer, self)._count_channel_stats(channel, [])
        for connection in connections:
            messages_count, channel_full_count = connection.mget(
                self._stat_key(channel, self.STAT_MESSAGES_COUNT),
                self._stat_key(channel, self.STAT_CHANNEL_FULL))
            statistics[self.STAT_MESSAGES_COUNT] += int(messages_count or 0)
            statistics[self.STAT_CHANNEL_FULL] += int(channel_full_count or 0)
            statistics[self.STAT_MESSAGES_PENDING] += connection.llen(self.prefix + channel)
            oldest = connection.lindex(self.prefix + channel, 0)
            if oldest:
                age = self.expiry - (split_item(oldest)[0] - time.time())
                statistics[self.STAT_MESSAGES_MAX_AGE] = max(statistics[self.STAT_MESSAGES_MAX_AGE],
                                                             int(age))
        return statistics

    def receive_twisted(self, channels):
        return self._reader.receive(channels)

    def reader_address(self, index):
        """A Deferred firing with (host, port, db, password) of shard `index`, where daphne's reader
        connects: the one the shard's redis-py client was made with."""
        kwargs = self.connection(index).connection_pool.connection_kwargs
        return defer.succeed((kwargs["host"], kwargs["port"], kwargs["db"], kwargs.get("password")))

    # ---- the "values" extension: small strings next to the layer (channel sessions) ----------------

    def values(self, namespace):
        """A store of expiring strings under `namespace` (see Values)."""
        return Values(self, namespace)


class Values(object):
    """Strings on the Redis shard their key hashes to, under "<prefix><namespace>:", expiring by
    themselves."""

    def __init__(self, layer, namespace):
        self.layer = layer
        self.namespace = namespace

    def _where(self, key):
        return self.layer.connection(self.layer.consistent_hash(key)), "%s%s:%s" % (
            self.layer.prefix, self.namespace, key)

    def get(self, key):
        connection, name = self._where(key)
        value = connection.get(name)
        return value.decode("ascii") if value is not None else None

    def set(self, key, value, ttl, only_new=False):
        """Store value for ttl seconds; False when only_new and the key exists."""
        connection, name = self._where(key)
        return bool(connection.set(name, value, ex=ttl, nx=only_new))

    def delete(self, key):
        connection, name = self._where(key)
        connection.delete(name)

    def clear_expired(self):
        pass  # Redis expires them

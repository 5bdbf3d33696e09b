"""The Redis channel layer: asgi_redis sharded by channel, one round trip per operation."""
import logging
import os
import random
import select
import threading
import time
from urllib.parse import urlsplit

import asgi_redis
import redis
from asgi_redis.twisted_utils import defer
from redis.sentinel import SentinelConnectionPool

from . import codec
from .base import CHANNEL, GROUP, LayerUnavailable, ProjectLayer, send_each
from .redis_packing import pack_with_hiredis
from .redis_reader import TwistedReader
from .redis_scripts import Scripts, split_item, wake_channel

logger = logging.getLogger(__name__)


class RedisQuestions(ProjectLayer):
    """The project's questions, answered for asgi_redis' servers (upstream's class and ours)."""

    CHECK_TIMEOUT = 2  # seconds a server may take to answer the start-up check
    OUTAGES = (LayerUnavailable, redis.ConnectionError, redis.TimeoutError)

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
    upstream already does for process-local channels), and a receive sweeps every shard holding one
    of its channels without blocking. A blocking one whose channels are all on one shard is a BLPOP
    there for up to `blpop_timeout` (a setting here; upstream has it as a fixed class attribute).
    One whose channels are on several shards listens to their lists' wake channels, which every
    send publishes to when the layer has several shards (redis_scripts.py), on all those shards at
    once: subscribed before its sweep, so that a message sent after the sweep wakes it (a BLPOP on
    one shard would leave a message on another unseen until the BLPOP times out). Messages live in
    the lists themselves (redis_scripts.py) and every operation is one round trip: a script for a
    send, a group send per shard and a pop that must not block; BLPOP for one that may. daphne reads
    with a TwistedReader (redis_reader.py). Subclassed rather than patched: the library stays as
    installed. Every process of a deployment must use this class: the list items are not upstream's.
    """

    extensions = asgi_redis.RedisChannelLayer.extensions + ["send_batch", "values", "cross_python",
                                                            "receive_batch"]
    # Seconds daphne's reader waits for a shard's answer before it drops the connection; None: as long
    # as the connection lives (a server of the deployment's own, or one whose address never changes).
    reader_reply_timeout = None

    def __init__(self, blpop_timeout=None, reply_batch=100, channel_expiry=None, **kwargs):
        super(RedisChannelLayer, self).__init__(**kwargs)
        # {channel glob: seconds} a message sent there lives instead of `expiry` (the first match,
        # as channel_capacity): websocket.connect's, no longer than daphne waits for its accept.
        self.channel_expiry = self.compile_capacities(channel_expiry or {})
        if blpop_timeout is not None:
            self.blpop_timeout = blpop_timeout
        self.scripts = Scripts(self)
        # A blocking receive over several shards: each shard's pub/sub connection (made when first
        # needed, kept), used by one thread at a time; the process they belong to (a child forked
        # after a receive must not read its parent's sockets).
        self._wakers, self._wakers_pid, self._wake_lock = {}, os.getpid(), threading.Lock()
        self._capacities = {}  # list name -> capacity, for LUA_BATCH's group members
        self._reader = TwistedReader(self, batch=reply_batch)

    def _generate_connections(self, hosts, redis_kwargs):
        return pack_with_hiredis(super(RedisChannelLayer, self)._generate_connections(hosts, redis_kwargs))

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

    def _send_many(self, index, targets, expiry=None):
        """Send to [(channel, serialized message)] on one shard in one round trip, each message
        living `expiry` seconds (the layer's by default); the positions (from 1) of the full ones."""
        return self.scripts.send(self.connection(index), [
            (channel, body, self.get_capacity(self._list(channel))) for channel, body in targets], expiry)

    def expiry_of(self, channel):
        """Seconds a message sent to `channel` lives."""
        for pattern, seconds in self.channel_expiry:
            if pattern.match(channel):
                return seconds
        return self.expiry

    # ---- ASGI API -------------------------------------------------------------------------------

    def send(self, channel, message):
        self.assert_sendable(channel, message)
        if self._send_many(self.consistent_hash(self._list(channel)), [(channel, self.serialize(message))],
                           self.expiry_of(channel)):
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
        if not block:
            found = self._sweep(shards)
        elif len(shards) == 1:  # BLPOP returns at once when a list holds something: no sweep first
            found = self._pop(shards[0][0], shards[0][1], block=True)
        else:
            with self._wake_lock:
                found = self._wait(shards)
        return found or (None, None)

    def receive_batch(self, channel, limit):
        """Up to `limit` messages of one channel in one round trip, without waiting: [message]."""
        assert self.valid_channel_name(channel, receive=True), "Channel name invalid"
        popped = self.scripts.pop_many(self.connection(self.consistent_hash(channel)), [self.prefix + channel], limit)
        if not popped:
            return []
        found = (self._unpack(popped[0], item) for item in popped[1:])
        return [message for _, message in filter(None, found)]

    def _sweep(self, shards):
        """(channel, message) from the first of [(shard index, list keys)] holding one, or None."""
        for index, list_names in shards:
            found = self._pop(index, list_names, block=False)
            if found:
                return found
        return None

    def _wait(self, shards):
        """A blocking receive over several shards: (channel, message), or None after blpop_timeout.

        Each shard's waker is subscribed to the wake channels of the lists there before the sweep:
        a send after the sweep publishes to a channel already listened to, so no wake-up is lost.
        After a wake-up only the lists woken are looked at; when another worker took the message
        the wait goes on until the deadline. Wakes left unread (a worker that was busy) are dropped
        before the sweep, which looks at every list anyway.

        Any error (raised, as a BLPOP's would be) closes the wakers of the receive: one may be half
        read, or subscribed on a master that a failover demoted or cut off, where no wake comes any
        more; the next receive subscribes new ones on the shards' current servers."""
        deadline = time.time() + self.blpop_timeout
        wakers = [(index, list_names, self._waker(index)) for index, list_names in shards]
        try:
            for index, list_names, waker in wakers:
                waker.subscribe(list_names)
            for index, list_names, waker in wakers:
                waker.read(confirm_until=deadline)
            found = self._sweep(shards)
            while not found:
                remaining = deadline - time.time()
                if remaining <= 0:
                    return None
                sockets = [waker.socket() for _, _, waker in wakers]
                # A connection found closed is read at once: redis-py connects it again and
                # subscribes anew, and the confirmations wake all its lists (read()).
                readable = select.select([sock for sock in sockets if sock is not None], [], [],
                                         0 if None in sockets else remaining)[0]
                for (index, list_names, waker), sock in zip(wakers, sockets):
                    if sock is not None and sock not in readable:
                        continue  # its buffer was emptied by the read before the wait: nothing came
                    woken = waker.read()
                    woken = [name for name in list_names if name in woken]
                    found = woken and self._pop(index, woken, block=False)
                    if found:
                        break  # the other shards' wakes stay buffered, dropped by the next receive
            return found
        except BaseException as exc:
            logger.debug("Closing the pub/sub connections of Redis shards %s: %r",
                         sorted(index for index, _, _ in wakers), exc)
            for _, _, waker in wakers:
                waker.close()
            raise

    def _waker(self, index):
        """Shard `index`'s Waker (a new one when there is none, or the last one failed)."""
        if self._wakers_pid != os.getpid():
            for waker in self._wakers.values():
                waker.forget()
            self._wakers, self._wakers_pid = {}, os.getpid()
        waker = self._wakers.get(index)
        if waker is None or waker.closed:
            waker = self._wakers[index] = Waker(
                _pool_like(self.connection(index).connection_pool), self.prefix, index)
        return waker

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


class Waker(object):
    """One shard's pub/sub connection, on which a blocking receive hears that its lists were pushed
    to (redis_scripts.py: wake channels).

    Its pool is like the shard's (the layer's password, database and timeouts; a Sentinel layer's
    current master) but its own (_pool_like). Once closed (after an error) it is replaced by a new
    one, subscribed from scratch.
    """

    def __init__(self, pool, prefix, index):
        self.pool = pool
        self.pubsub = redis.StrictRedis(connection_pool=pool).pubsub()
        self.prefix = prefix
        self.index = index
        self.lists = {}  # wake channel (bytes) -> list key, for every list subscribed to
        self.unconfirmed = set()  # wake channels whose subscription the server has not confirmed
        self.closed = False

    def subscribe(self, list_keys):
        """Subscribe to the wake channels of the lists not subscribed to yet (without waiting)."""
        new = {}
        for key in list_keys:
            channel = wake_channel(self.prefix, key[len(self.prefix):]).encode("utf8")
            if channel not in self.lists:
                new[channel] = key
        if new:
            self.pubsub.subscribe(*new)
            self.lists.update(new)
            self.unconfirmed.update(new)

    def read(self, confirm_until=None):
        """The list keys woken by the messages read without blocking; first, given a deadline,
        wait until then for the confirmation of the subscriptions: a sweep after it is sure to be
        followed by a wake for any push it missed. A message that is no wake (subscriptions
        confirmed again after redis-py reconnected: pushes may have gone unheard) wakes every list."""
        woken = set()
        while True:
            timeout = 0
            if confirm_until is not None and self.unconfirmed:
                timeout = max(0, confirm_until - time.time())
            message = self.pubsub.get_message(timeout=timeout)
            if message is None:
                if timeout and self.unconfirmed:
                    logger.debug("Redis shard %d did not confirm %d subscriptions in time",
                                 self.index, len(self.unconfirmed))
                return woken
            channel = message["channel"]
            if isinstance(channel, str):  # a client that decodes responses
                channel = channel.encode("utf8")
            if message["type"] == "message" and channel in self.lists:
                woken.add(self.lists[channel])
            elif message["type"] == "subscribe" and channel in self.unconfirmed:
                self.unconfirmed.discard(channel)
            else:
                woken.update(self.lists.values())

    def socket(self):
        """The connection's socket, to wait on (connected: it is subscribed)."""
        return self.pubsub.connection._sock

    def close(self):
        self.closed = True
        try:
            self.pubsub.reset()  # disconnects and hands the connection back to the pool
            self.pool.disconnect()
        except Exception as exc:
            logger.debug("Closing the pub/sub connection of Redis shard %d: %s", self.index, exc)

    def forget(self):
        """Let go of the connection without touching its socket (a forked child's copy of its
        parent's: closing it would shut the parent's down)."""
        self.pubsub.connection = None
        self.closed = True


def _pool_like(pool):
    """A new connection pool with the settings of `pool`, a Sentinel one's included. A Waker's
    connection has a pool of its own: once its master changed, a redis-py 2.10 Sentinel pool
    disconnects all of its connections, in use or not, whenever one of them connects (it never
    notes the new address), so that the pub/sub connection and the one for the sweeps would cut
    each other off at every receive."""
    kwargs = dict(pool.connection_kwargs)
    if isinstance(pool, SentinelConnectionPool):
        kwargs.pop("connection_pool", None)  # the connections' way back to their pool: the new one
        return SentinelConnectionPool(pool.service_name, pool.sentinel_manager, is_master=pool.is_master,
                                      check_connection=pool.check_connection,
                                      connection_class=pool.connection_class, **kwargs)
    return redis.ConnectionPool(connection_class=pool.connection_class, **kwargs)


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

    def set_and_depth(self, key, value, ttl, channel):
        """set() a value and return how many messages wait on `channel`, in one round trip when
        both are on one shard; None when they are not (the caller must look at the channel)."""
        index = self.layer.consistent_hash(key)
        if index != self.layer.consistent_hash(channel):
            self.set(key, value, ttl)
            return None
        connection, name = self._where(key)
        return self.layer.scripts.set_depth(connection, name, value, ttl, self.layer.prefix + channel)

    def delete(self, key):
        connection, name = self._where(key)
        connection.delete(name)

    def clear_expired(self):
        pass  # Redis expires them

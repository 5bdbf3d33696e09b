"""The Redis channel layer: asgi_redis sharded by channel, with a one-round-trip pop and a persistent
twisted connection for daphne."""
import collections
import itertools
import logging
import random
import time
import uuid

import asgi_redis
from asgi_redis.twisted_utils import defer

logger = logging.getLogger(__name__)


# Pop the first waiting message of several lists and fetch (and delete) its body: one round trip
# instead of upstream's LPOP, GET, DEL.
LUA_POPGET = """
for i = 1, #KEYS do
    local key = redis.call('LPOP', KEYS[i])
    if key then
        local body = redis.call('GET', key)
        redis.call('DEL', key)
        return {KEYS[i], body or false}
    end
end
return false
"""

# Up to ARGV[1] waiting messages of the first non-empty list, bodies fetched and deleted: daphne's
# reader takes a burst of replies (a broadcast to the 500 sockets of one daphne) in a few round
# trips instead of one each. Expired bodies come back as false.
LUA_POPGET_MANY = """
local limit = tonumber(ARGV[1])
for i = 1, #KEYS do
    local keys = redis.call('LRANGE', KEYS[i], 0, limit - 1)
    if #keys > 0 then
        redis.call('LTRIM', KEYS[i], #keys, -1)
        local out = {KEYS[i]}
        for j = 1, #keys do
            out[j + 1] = redis.call('GET', keys[j]) or false
            redis.call('DEL', keys[j])
        end
        return out
    end
end
return false
"""

# The body a BLPOP handed us, fetched and deleted in one round trip.
LUA_GETDEL = """
local body = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1])
return body
"""

# Send one body to each of several lists below their capacity, counting the layer's statistics:
# one round trip for a send (upstream: two, the send and its counters) and for a whole group send
# (upstream: one send and one counter call per member).
# KEYS: global messages stat, global full stat, then per target: body key, list, messages stat,
#       full stat.
# ARGV: expiry, channel stat expiry, global stat expiry, then per target: body, capacity.
# Returns the number of targets that were full.
LUA_SEND = """
local expiry, chan_ttl, global_ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local full, sent = 0, 0
for i = 0, (#KEYS - 2) / 4 - 1 do
    local k, a = 3 + i * 4, 4 + i * 2
    if redis.call('LLEN', KEYS[k + 1]) >= tonumber(ARGV[a + 1]) then
        full = full + 1
        redis.call('INCR', KEYS[k + 3])
        redis.call('EXPIRE', KEYS[k + 3], chan_ttl)
    else
        sent = sent + 1
        redis.call('SET', KEYS[k], ARGV[a], 'EX', expiry)
        redis.call('RPUSH', KEYS[k + 1], KEYS[k])
        redis.call('EXPIRE', KEYS[k + 1], expiry + 1)
        redis.call('INCR', KEYS[k + 2])
        redis.call('EXPIRE', KEYS[k + 2], chan_ttl)
    end
end
if sent > 0 then
    redis.call('INCRBY', KEYS[1], sent)
    redis.call('EXPIRE', KEYS[1], global_ttl)
end
if full > 0 then
    redis.call('INCRBY', KEYS[2], full)
    redis.call('EXPIRE', KEYS[2], global_ttl)
end
return full
"""

# A group's members after dropping the expired ones: one round trip instead of two.
LUA_GROUP_MEMBERS = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""


class RedisChannelLayer(asgi_redis.RedisChannelLayer):
    """asgi_redis where every channel lives on one shard, and a receive looks at all of them.

    Upstream spreads a normal channel's messages round-robin over the shards and lets each receive
    look at one shard only: with several Redis servers a message sits unseen while a worker polls or
    blocks on another shard (up to its 5 s BLPOP, past daphne's 5 s WebSocket handshake limit), a
    channel's capacity is multiplied by the number of shards, and FIFO order is lost. asgiref's
    conformance suite fails on it. Here each channel is placed by a consistent hash of its name (as
    upstream already does for process-local channels), a receive first sweeps every shard holding
    one of its channels without blocking, and only then blocks on one of them for `blpop_timeout`
    (a setting here; upstream has it as a fixed class attribute). With one server this is upstream's
    behaviour. Subclassed rather than patched: the library stays as installed.
    """

    def __init__(self, blpop_timeout=None, reply_batch=100, **kwargs):
        super(RedisChannelLayer, self).__init__(**kwargs)
        self.reply_batch = reply_batch
        self._replies = collections.deque()  # popped for daphne, not yet handed over
        if blpop_timeout is not None:
            self.blpop_timeout = blpop_timeout
        self._block_rotation = itertools.count()
        self._idle = False  # the last receive found nothing
        self.popget = self.connection(0).register_script(LUA_POPGET)
        self.getdel = self.connection(0).register_script(LUA_GETDEL)
        self.sendmany = self.connection(0).register_script(LUA_SEND)
        self.groupmembers = self.connection(0).register_script(LUA_GROUP_MEMBERS)
        self._twisted = {}  # shard index -> persistent txredisapi connection (daphne's reader)

    def _stat_key(self, channel, stat):
        return "%s%s:%s" % (self.stats_prefix, channel, stat)

    def _send_many(self, index, targets):
        """Send to [(channel, message)] on one shard in one round trip; how many were full."""
        keys = [self._stat_key(self.global_stats_key, self.STAT_MESSAGES_COUNT),
                self._stat_key(self.global_stats_key, self.STAT_CHANNEL_FULL)]
        args = [self.expiry, self.channel_statistics_expiry, self.global_statistics_expiry]
        for channel, message in targets:
            keys += [self.prefix + uuid.uuid4().hex, self.prefix + channel,
                     self._stat_key(channel, self.STAT_MESSAGES_COUNT),
                     self._stat_key(channel, self.STAT_CHANNEL_FULL)]
            args += [self.serialize(message), self.get_capacity(channel)]
        return self.sendmany(keys=keys, args=args, client=self.connection(index))

    def _target(self, channel, message):
        """(list name, message) as upstream stores it: process-local names keep the full name in
        the message."""
        if "!" in channel:
            message = dict(message.items())
            message["__asgi_channel__"] = channel
            channel = self.non_local_name(channel)
        return channel, message

    def send(self, channel, message):
        assert isinstance(message, dict), "message is not a dict"
        assert self.valid_channel_name(channel), "Channel name not valid"
        assert "__asgi_channel__" not in message
        target = self._target(channel, message)
        if self._send_many(self.consistent_hash(target[0]), [target]):
            raise self.ChannelFull()

    def group_channels(self, group):
        connection = self.connection(self.consistent_hash(group))
        members = self.groupmembers(keys=[self._group_key(group)],
                                    args=[int(time.time()) - self.group_expiry], client=connection)
        return [member.decode("utf8") for member in members]

    def send_group(self, group, message):
        """Every member below capacity gets it, the full ones drop (the groups extension allows
        that): two round trips with one shard, whatever the group's size (upstream: two per
        member). Members on other shards cost one more round trip per shard."""
        assert self.valid_group_name(group), "Group name not valid"
        by_shard = {}
        for channel in self.group_channels(group):
            target = self._target(channel, message)
            by_shard.setdefault(self.consistent_hash(target[0]), []).append(target)
        for index, targets in by_shard.items():
            self._send_many(index, targets)

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
        """(channel, message) from one shard, skipping messages whose body expired; None if empty."""
        connection = self.connection(index)
        while True:
            random.shuffle(list_names)
            # A worker that just found its channels empty goes straight to BLPOP (which answers at
            # once if something arrived meanwhile): one round trip less on the way to an idle
            # worker. A busy one pops with the script, one round trip per message.
            result = None
            if not (block and self._idle):
                result = self.popget(keys=list_names, client=connection)
            if not result and block:
                popped = connection.blpop(list_names, timeout=self.blpop_timeout)
                if popped:
                    result = [popped[0], self.getdel(keys=[popped[1]], client=connection)]
            self._idle = not result
            if not result:
                return None
            if not result[1]:
                block = False  # that one expired: look again, without waiting
                continue
            return self._unpack(result[0], result[1])

    def _unpack(self, list_key, body):
        channel = list_key[len(self.prefix):].decode("utf8")
        message = self.deserialize(body)
        if "__asgi_channel__" in message:
            channel = message.pop("__asgi_channel__")
        return channel, message

    # ---- daphne's reader (the "twisted" extension) ----------------------------------------------

    def _twisted_connection(self, index):
        """One persistent, self-reconnecting connection per shard. Upstream opens (and closes) a new
        txredisapi pool for every message daphne reads, which caps a daphne at a few hundred
        replies per second and adds milliseconds to each."""
        if index not in self._twisted:
            import txredisapi
            kwargs = self.connection(index).connection_pool.connection_kwargs
            self._twisted[index] = txredisapi.lazyConnection(
                host=kwargs["host"], port=kwargs["port"], dbid=kwargs["db"],
                password=kwargs.get("password"), reconnect=True, charset=None, convertNumbers=False,
                connectTimeout=5)
        return self._twisted[index]

    @defer.inlineCallbacks
    def receive_twisted(self, channels):
        """daphne's reader. daphne reads only its own process-local reply list, which nobody else
        may read: it takes up to reply_batch replies per round trip and keeps the rest here for
        the next calls."""
        if self._replies:
            defer.returnValue(self._replies.popleft())
        indexes = self._receive_list_names(channels)
        if indexes is None:
            defer.returnValue((None, None))
        limit = self.reply_batch if all("!" in c for c in channels) else 1
        for index, list_names in indexes.items():
            connection = self._twisted_connection(index)
            result = yield connection.eval(LUA_POPGET_MANY, list_names, [limit])
            if not result:
                popped = yield connection.blpop(list_names, timeout=self.blpop_timeout)
                if popped:
                    body = yield connection.eval(LUA_GETDEL, [popped[1]])
                    result = [popped[0], body]
            if result:
                self._replies.extend(self._unpack(result[0], body) for body in result[1:] if body)
                if self._replies:
                    defer.returnValue(self._replies.popleft())
        defer.returnValue((None, None))  # daphne calls again at once

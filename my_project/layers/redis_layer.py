"""The Redis channel layer: asgi_redis sharded by channel, one round trip per operation, and a
persistent twisted connection for daphne."""
import collections
import itertools
import logging
import random
import time

import asgi_redis
from asgi_redis.twisted_utils import defer

logger = logging.getLogger(__name__)

# Messages are stored in the channel's list itself as b"<expires at>:<serialized message>".
# Upstream stores each body under a key of its own and pushes the key, so every receive costs a
# second round trip (GET + DEL after BLPOP) and every send a SET; a blocked BLPOP hands over the
# whole message here. Expiry is checked when a message is popped (by Redis' clock in the scripts,
# by the receiver's after BLPOP) instead of by a key's TTL; a list nobody sends to still expires
# as a whole, as upstream's do.

LUA_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function live(item)
    local sep = string.find(item, ':', 1, true)
    return sep and tonumber(string.sub(item, 1, sep - 1)) >= now
end
"""

# The first live message of several lists (expired ones are dropped on the way).
LUA_POP = LUA_NOW + """
for i = 1, #KEYS do
    while true do
        local item = redis.call('LPOP', KEYS[i])
        if not item then break end
        if live(item) then return {KEYS[i], item} end
    end
end
return false
"""

# Up to ARGV[1] messages of the first non-empty list: daphne's reader takes a burst of replies
# (a broadcast to the 500 sockets of one daphne) in a few round trips instead of one each.
LUA_POP_MANY = LUA_NOW + """
local limit = tonumber(ARGV[1])
for i = 1, #KEYS do
    local items = redis.call('LRANGE', KEYS[i], 0, limit - 1)
    if #items > 0 then
        redis.call('LTRIM', KEYS[i], #items, -1)
        local out = {KEYS[i]}
        for j = 1, #items do
            if live(items[j]) then out[#out + 1] = items[j] end
        end
        return out
    end
end
return false
"""

# Send to several lists below their capacity, counting the layer's statistics: one round trip for
# a send (upstream: two, the send and its counters) and for a whole group send (upstream: two per
# member). Expired messages at the head of a list do not count against its capacity.
# KEYS: global messages stat, global full stat, then per target: list, messages stat, full stat.
# ARGV: list expiry, channel stat expiry, global stat expiry, then per target: item, capacity.
# Returns the number of targets that were full.
LUA_SEND = LUA_NOW + """
local expiry, chan_ttl, global_ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local full, sent = 0, 0
for i = 0, (#KEYS - 2) / 3 - 1 do
    local k, a = 3 + i * 3, 4 + i * 2
    local length = redis.call('LLEN', KEYS[k])
    while length >= tonumber(ARGV[a + 1]) do
        local head = redis.call('LINDEX', KEYS[k], 0)
        if not head or live(head) then break end
        redis.call('LPOP', KEYS[k])
        length = length - 1
    end
    if length >= tonumber(ARGV[a + 1]) then
        full = full + 1
        redis.call('INCR', KEYS[k + 2])
        redis.call('EXPIRE', KEYS[k + 2], chan_ttl)
    else
        sent = sent + 1
        redis.call('RPUSH', KEYS[k], ARGV[a])
        redis.call('EXPIRE', KEYS[k], expiry + 1)
        redis.call('INCR', KEYS[k + 1])
        redis.call('EXPIRE', KEYS[k + 1], chan_ttl)
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
    (a setting here; upstream has it as a fixed class attribute). Messages live in the lists
    themselves (see LUA_NOW above) and every operation is one script: a send, a group send per
    shard, a pop. Subclassed rather than patched: the library stays as installed. Every process of
    a deployment must use this class: the list items are not upstream's.
    """

    def __init__(self, blpop_timeout=None, reply_batch=100, **kwargs):
        super(RedisChannelLayer, self).__init__(**kwargs)
        self.reply_batch = reply_batch  # replies daphne takes per round trip
        self._replies = collections.deque()  # popped for daphne, not yet handed over
        if blpop_timeout is not None:
            self.blpop_timeout = blpop_timeout
        self._block_rotation = itertools.count()
        self._idle = False  # the last receive found nothing
        self.pop_script = self.connection(0).register_script(LUA_POP)
        self.send_script = self.connection(0).register_script(LUA_SEND)
        self.members_script = self.connection(0).register_script(LUA_GROUP_MEMBERS)
        self._twisted = {}  # shard index -> persistent txredisapi connection (daphne's reader)

    # ---- messages in lists ----------------------------------------------------------------------

    def _item(self, message):
        return b"%.3f:" % (time.time() + self.expiry) + self.serialize(message)

    def _unpack(self, list_key, item):
        """(channel, message), or None when the message expired while it waited."""
        if isinstance(list_key, bytes):
            list_key = list_key.decode("utf8")
        expires, _, body = item.partition(b":")
        if float(expires) < time.time():
            return None
        channel = list_key[len(self.prefix):]
        message = self.deserialize(body)
        if "__asgi_channel__" in message:
            channel = message.pop("__asgi_channel__")
        return channel, message

    def _target(self, channel, message):
        """(list name, message) as upstream addresses it: a process-local channel's messages go to
        the list of its non-local part and carry the full name."""
        if "!" in channel:
            message = dict(message.items())
            message["__asgi_channel__"] = channel
            channel = self.non_local_name(channel)
        return channel, message

    def _stat_key(self, channel, stat):
        return "%s%s:%s" % (self.stats_prefix, channel, stat)

    def _send_many(self, index, targets):
        """Send to [(list name, message)] on one shard in one round trip; how many were full."""
        keys = [self._stat_key(self.global_stats_key, self.STAT_MESSAGES_COUNT),
                self._stat_key(self.global_stats_key, self.STAT_CHANNEL_FULL)]
        args = [self.expiry, self.channel_statistics_expiry, self.global_statistics_expiry]
        for channel, message in targets:
            keys += [self.prefix + channel, self._stat_key(channel, self.STAT_MESSAGES_COUNT),
                     self._stat_key(channel, self.STAT_CHANNEL_FULL)]
            args += [self._item(message), self.get_capacity(channel)]
        return self.send_script(keys=keys, args=args, client=self.connection(index))

    # ---- ASGI API -------------------------------------------------------------------------------

    def send(self, channel, message):
        assert isinstance(message, dict), "message is not a dict"
        assert self.valid_channel_name(channel), "Channel name not valid"
        assert "__asgi_channel__" not in message
        target = self._target(channel, message)
        if self._send_many(self.consistent_hash(target[0]), [target]):
            raise self.ChannelFull()

    def group_channels(self, group):
        connection = self.connection(self.consistent_hash(group))
        members = self.members_script(keys=[self._group_key(group)],
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
        """(channel, message) from one shard; None if there is none (within blpop_timeout)."""
        connection = self.connection(index)
        random.shuffle(list_names)
        # A worker that just found its channels empty goes straight to BLPOP (which answers at
        # once if something arrived meanwhile): one round trip less on the way to an idle worker.
        # A busy one pops with the script, which also skips expired messages.
        found = None
        if not (block and self._idle):
            result = self.pop_script(keys=list_names, client=connection)
            found = result and self._unpack(result[0], result[1])
        while not found and block:
            popped = connection.blpop(list_names, timeout=self.blpop_timeout)
            if not popped:
                break
            found = self._unpack(popped[0], popped[1])  # None: expired, wait for the next one
        self._idle = not found
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
                age = self.expiry - (float(oldest.partition(b":")[0]) - time.time())
                statistics[self.STAT_MESSAGES_MAX_AGE] = max(statistics[self.STAT_MESSAGES_MAX_AGE],
                                                             int(age))
        return statistics

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
            result = yield connection.eval(LUA_POP_MANY, list_names, [limit])
            if result:
                items = [(result[0], item) for item in result[1:]]
            else:
                popped = yield connection.blpop(list_names, timeout=self.blpop_timeout)
                items = [popped] if popped else []
            self._replies.extend(found for found in (self._unpack(k, i) for k, i in items) if found)
            if self._replies:
                defer.returnValue(self._replies.popleft())
        defer.returnValue((None, None))  # daphne calls again at once

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

# Messages are stored in the channel's list itself as b"<expires at>:<channel>:<serialized message>"
# (<channel> is the full name of a process-local channel, empty otherwise). Upstream stores each
# body under a key of its own and pushes the key, so every receive costs a second round trip
# (GET + DEL after BLPOP) and every send a SET; a blocked BLPOP hands over the whole message here.
# Upstream puts a process-local channel's full name inside the body; outside it, a script can
# address one serialized body to every member of a group (LUA_BATCH). Expiry is checked when a
# message is popped (by Redis' clock in the scripts, by the receiver's after BLPOP) instead of by a
# key's TTL; a list nobody sends to still expires as a whole, as upstream's do.

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

# A group's members after dropping the expired ones: one round trip instead of two.
LUA_GROUP_MEMBERS = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

# Pushing to a list below its capacity, counting the layer's statistics (upstream: a second round
# trip per send for its counters); shared by LUA_SEND and LUA_BATCH. Expired messages at the head
# of a list do not count against its capacity. A process-local channel's messages go to the list of
# its non-local part and carry its full name (see the top of this module).
# KEYS: global messages stat, global full stat.
# ARGV starts with: list expiry, channel stat ttl, global stat ttl, key prefix, stats prefix,
# expires stamp.
LUA_PUSH = LUA_NOW + """
local expiry, chan_ttl, global_ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local prefix, stats, stamp = ARGV[4], ARGV[5], ARGV[6]
local sent, dropped = 0, 0
local function split(name)
    local bang = string.find(name, '!', 1, true)
    if bang then return string.sub(name, 1, bang), name end
    return name, ''
end
local function push(name, body, capacity)
    local list, channel = split(name)
    local key = prefix .. list
    local length = redis.call('LLEN', key)
    while length >= capacity do
        local head = redis.call('LINDEX', key, 0)
        if not head or live(head) then break end
        redis.call('LPOP', key)
        length = length - 1
    end
    if length >= capacity then
        dropped = dropped + 1
        redis.call('INCR', stats .. list .. ':channel_full_count')
        redis.call('EXPIRE', stats .. list .. ':channel_full_count', chan_ttl)
        return false
    end
    sent = sent + 1
    redis.call('RPUSH', key, stamp .. ':' .. channel .. ':' .. body)
    redis.call('EXPIRE', key, expiry + 1)
    redis.call('INCR', stats .. list .. ':messages_count')
    redis.call('EXPIRE', stats .. list .. ':messages_count', chan_ttl)
    return true
end
local function count()
    if sent > 0 then
        redis.call('INCRBY', KEYS[1], sent)
        redis.call('EXPIRE', KEYS[1], global_ttl)
    end
    if dropped > 0 then
        redis.call('INCRBY', KEYS[2], dropped)
        redis.call('EXPIRE', KEYS[2], global_ttl)
    end
end
"""

# Send to channels (of one shard) in one round trip: a send, or a group send's members.
# ARGV after LUA_PUSH's: per channel: name, body, capacity. Returns the positions (from 1) of the
# full ones.
LUA_SEND = LUA_PUSH + """
local full = {}
for i = 7, #ARGV, 3 do
    if not push(ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])) then full[#full + 1] = (i - 7) / 3 + 1 end
end
count()
return full
"""

# Several sends in one round trip on a one-server layer (see send_batch): channels, groups (their
# members read here, not by a round trip of their own), and groups emptied once sent to (a long
# poll's release). Each member's list and capacity derive from its name. When a member is on a list
# whose capacity the caller did not pass, nothing is sent and the unknown lists are returned, for
# the caller to price and try again (so the sends keep their order).
# ARGV after LUA_PUSH's: group cutoff, number of priced lists, (list, capacity) * that, then per
# send: kind ("c" channel, "g" group, "o" group once), channel or group key, body, capacity.
# Returns {positions of the full channel sends (from 1), unknown lists}.
LUA_BATCH = LUA_PUSH + """
local cutoff, n = ARGV[7], tonumber(ARGV[8])
local caps = {}
for i = 0, n - 1 do caps[ARGV[9 + i * 2]] = tonumber(ARGV[10 + i * 2]) end
local first = 9 + n * 2
-- Look up every group first: nothing is sent unless every member's list is priced.
local members, unknown, seen = {}, {}, {}
for i = first, #ARGV, 4 do
    if ARGV[i] ~= 'c' then
        redis.call('ZREMRANGEBYSCORE', ARGV[i + 1], 0, cutoff)
        members[i] = redis.call('ZRANGE', ARGV[i + 1], 0, -1)
        for _, member in ipairs(members[i]) do
            local list = split(member)
            if not caps[list] and not seen[list] then
                seen[list] = true
                unknown[#unknown + 1] = list
            end
        end
    end
end
if #unknown > 0 then return {{}, unknown} end
local full = {}
for i = first, #ARGV, 4 do
    local kind, body = ARGV[i], ARGV[i + 2]
    if kind == 'c' then
        if not push(ARGV[i + 1], body, tonumber(ARGV[i + 3])) then
            full[#full + 1] = (i - first) / 4 + 1
        end
    else
        for _, member in ipairs(members[i]) do
            push(member, body, caps[split(member)])
        end
        if kind == 'o' then redis.call('DEL', ARGV[i + 1]) end
    end
end
count()
return {full, {}}
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
    themselves (see LUA_NOW above) and every operation is one round trip: a script for a send, a
    group send per shard and a pop that must not block; BLPOP for one that may. Subclassed rather
    than patched: the library stays as installed. Every process of a deployment must use this
    class: the list items are not upstream's.
    """

    def __init__(self, blpop_timeout=None, reply_batch=100, **kwargs):
        super(RedisChannelLayer, self).__init__(**kwargs)
        self.reply_batch = reply_batch  # replies daphne takes per round trip
        self._replies = collections.deque()  # popped for daphne, not yet handed over
        if blpop_timeout is not None:
            self.blpop_timeout = blpop_timeout
        self._block_rotation = itertools.count()
        self.pop_script = self.connection(0).register_script(LUA_POP)
        self.send_script = self.connection(0).register_script(LUA_SEND)
        self.members_script = self.connection(0).register_script(LUA_GROUP_MEMBERS)
        self.batch_script = self.connection(0).register_script(LUA_BATCH)
        self._capacities = {}  # list name -> capacity, for LUA_BATCH's group members
        self._twisted = {}  # shard index -> persistent txredisapi connection (daphne's reader)
        self._blmpop = None  # whether the server has BLMPOP: unknown until daphne's reader tries

    # ---- messages in lists ----------------------------------------------------------------------

    def _stamp(self):
        return b"%.3f" % (time.time() + self.expiry)

    def _unpack(self, list_key, item):
        """(channel, message), or None when the message expired while it waited."""
        expires, _, rest = item.partition(b":")
        if float(expires) < time.time():
            return None
        local, _, body = rest.partition(b":")
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

    def _global_stat_keys(self):
        return [self._stat_key(self.global_stats_key, self.STAT_MESSAGES_COUNT),
                self._stat_key(self.global_stats_key, self.STAT_CHANNEL_FULL)]

    def _push_args(self):
        """LUA_PUSH's leading arguments."""
        return [self.expiry, self.channel_statistics_expiry, self.global_statistics_expiry,
                self.prefix, self.stats_prefix, self._stamp()]

    def _send_many(self, index, targets):
        """Send to [(channel, serialized message)] on one shard in one round trip; the positions
        (from 1) of the full ones."""
        args = self._push_args()
        for channel, body in targets:
            args += [channel, body, self.get_capacity(self._list(channel))]
        return self.send_script(keys=self._global_stat_keys(), args=args, client=self.connection(index))

    # ---- ASGI API -------------------------------------------------------------------------------

    def send(self, channel, message):
        assert isinstance(message, dict), "message is not a dict"
        assert self.valid_channel_name(channel), "Channel name not valid"
        assert "__asgi_channel__" not in message
        if self._send_many(self.consistent_hash(self._list(channel)), [(channel, self.serialize(message))]):
            raise self.ChannelFull()

    def group_channels(self, group):
        connection = self.connection(self.consistent_hash(group))
        members = self.members_script(keys=[self._group_key(group)],
                                      args=[int(time.time()) - self.group_expiry], client=connection)
        return [member.decode("utf8") for member in members]

    def send_group(self, group, message):
        """Every member below capacity gets it, the full ones drop (the groups extension allows
        that): one round trip with one server, whatever the group's size (upstream: two per
        member); with several, one to read the members and one per shard they are on."""
        assert self.valid_group_name(group), "Group name not valid"
        if self.ring_size == 1:
            self.send_batch([("group", group, message)])
            return
        self._send_to_members(self.group_channels(group), self.serialize(message))

    def _send_to_members(self, channels, body):
        by_shard = {}
        for channel in channels:
            by_shard.setdefault(self.consistent_hash(self._list(channel)), []).append((channel, body))
        for index, targets in by_shard.items():
            self._send_many(index, targets)

    def send_batch(self, sends):
        """Several sends at once, in order: [(kind, name, message)] with kind "channel" (a send),
        "group" (a group send: full members drop) or "group_once" (a group send, after which the
        group is empty: a long poll's release). The names of the channel sends that were full are
        returned; the rest still went. A consumer's answers (a broadcast, an ack, work for another
        pool) cost one round trip on a one-server layer instead of one or two each; with several
        servers, one per send as before."""
        if self.ring_size > 1:
            return self._send_batch_each(sends)
        for _ in range(3):  # group members on lists not seen before: price them and try again
            full, unknown = self._batch_script(sends)
            if not unknown:
                return [sends[int(index) - 1][1] for index in full]
            for name in unknown:
                name = name.decode("utf8")
                self._capacities[name] = self.get_capacity(name)
        return self._send_batch_each(sends)  # members keep joining on new lists: one at a time

    def _batch_script(self, sends):
        # Every call carries the table: a few entries (one per daphne) normally. Lists of daphnes
        # long gone, or groups of many plain channels, would grow it: start over (one more round
        # trip re-prices the lists in use).
        if len(self._capacities) > 200:
            self._capacities.clear()
        entries = []
        for kind, name, message in sends:
            if kind == "channel":
                assert self.valid_channel_name(name), "Channel name not valid"
                assert "__asgi_channel__" not in message
                entries.append(("c", name, self.serialize(message), self.get_capacity(self._list(name))))
            else:
                assert kind in ("group", "group_once") and self.valid_group_name(name), \
                    "Group name not valid"
                entries.append(("g" if kind == "group" else "o", self._group_key(name),
                                self.serialize(message), 0))
        args = self._push_args() + [int(time.time()) - self.group_expiry, len(self._capacities)]
        for pair in list(self._capacities.items()) + entries:
            args += pair
        return self.batch_script(keys=self._global_stat_keys(), args=args, client=self.connection(0))

    def _send_batch_each(self, sends):
        # Not chat.delivery's loop for other layers: its group sends would come back to send_batch
        # (send_group goes through it on one server), and it reads a group's members twice.
        full = []
        for kind, name, message in sends:
            if kind == "channel":
                try:
                    self.send(name, message)
                except self.ChannelFull:
                    full.append(name)
                continue
            members = self.group_channels(name)
            self._send_to_members(members, self.serialize(message))
            if kind == "group_once":
                for member in members:
                    self.group_discard(name, member)
        return full

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
            result = self.pop_script(keys=list_names, client=connection)
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

    def receive_twisted(self, channels):
        """daphne's reader. daphne reads only its own process-local reply list, which nobody else
        may read: it takes up to reply_batch replies per round trip and keeps the rest here for
        the next calls (handed over without a generator and its Deferreds: daphne calls this once
        per reply)."""
        if self._replies:
            return defer.succeed(self._replies.popleft())
        return self._receive_twisted(channels)

    @defer.inlineCallbacks
    def _receive_twisted(self, channels):
        indexes = self._receive_list_names(channels)
        if indexes is None:
            defer.returnValue((None, None))
        limit = self.reply_batch if all("!" in c for c in channels) else 1
        for index, list_names in indexes.items():
            connection = self._twisted_connection(index)
            if self._blmpop and len(indexes) == 1:
                # BLMPOP answers at once when something is there: no look first (one round trip
                # per wake-up instead of two). Expired messages are dropped by _unpack.
                items = yield self._block_many(connection, list_names, limit)
            else:
                result = yield connection.eval(LUA_POP_MANY, list_names, [limit])
                if result:
                    items = [(result[0], item) for item in result[1:]]
                else:
                    items = yield self._block_many(connection, list_names, limit)
            self._replies.extend(found for found in (self._unpack(k, i) for k, i in items) if found)
            if self._replies:
                defer.returnValue(self._replies.popleft())
        defer.returnValue((None, None))  # daphne calls again at once

    @defer.inlineCallbacks
    def _block_many(self, connection, list_names, limit):
        """Wait for messages: BLMPOP (Redis 7) hands over up to `limit` at once, so a broadcast and
        the ack behind it, pushed by one script, reach daphne in one wake-up; BLPOP (older
        servers) takes one and the rest cost another round trip."""
        if self._blmpop is not False:
            try:
                popped = yield connection.execute_command(
                    "BLMPOP", self.blpop_timeout, len(list_names), *(list_names + ["LEFT", "COUNT", limit]))
                self._blmpop = True
                defer.returnValue([(popped[0], item) for item in popped[1]] if popped else [])
            except Exception as exc:  # txredisapi.ResponseError on a server without BLMPOP
                if self._blmpop or "unknown command" not in str(exc).lower():
                    raise
                logger.info("Redis has no BLMPOP (before 7.0): daphne takes one reply per wake-up")
                self._blmpop = False
        popped = yield connection.blpop(list_names, timeout=self.blpop_timeout)
        defer.returnValue([popped] if popped else [])

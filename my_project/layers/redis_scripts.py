"""The Redis layer's list items and the Lua scripts that read and write them, each script's arguments
built in one place."""
import time

from .base import CHANNEL, GROUP, GROUP_ONCE

# Messages are stored in the channel's list itself as b"<expires at>:<channel>:<serialized message>"
# (<channel> is the full name of a process-local channel, empty otherwise). Upstream stores each
# body under a key of its own and pushes the key, so every receive costs a second round trip
# (GET + DEL after BLPOP) and every send a SET; a blocked BLPOP hands over the whole message here.
# Upstream puts a process-local channel's full name inside the body; outside it, a script can
# address one serialized body to every member of a group (LUA_BATCH). Expiry is checked when a
# message is popped (by Redis' clock in the scripts, by the receiver's after BLPOP) instead of by a
# key's TTL; a list nobody sends to still expires as a whole, as upstream's do.

# With several shards, a push to a list is also announced on the list's wake channel (pub/sub, an
# empty message): a blocking receive whose lists are on several shards listens to their wake
# channels on every shard at once (RedisChannelLayer._wait) instead of blocking on one shard's lists
# while a message waits unseen on another. One shard publishes nothing: its receive is one BLPOP.
WAKE_FORMAT = "%(prefix)swake:%(list)s"
assert WAKE_FORMAT.endswith("%(list)s")  # LUA_PUSH's channel, wake_prefix .. list, is wake_channel's


def wake_prefix(prefix):
    """What the wake channels of a layer's lists start with (LUA_PUSH appends the list's name)."""
    return WAKE_FORMAT % {"prefix": prefix, "list": ""}


def wake_channel(prefix, list_name):
    """The wake channel of list `list_name` (without the layer's prefix) of a layer on `prefix`."""
    return WAKE_FORMAT % {"prefix": prefix, "list": list_name}


def stamp(expiry):
    """The <expires at> of a message sent now that lives `expiry` seconds."""
    return b"%.3f" % (time.time() + expiry)


def split_item(item):
    """(expires at, process-local channel or b"", serialized message) of a list item."""
    expires, _, rest = item.partition(b":")
    local, _, body = rest.partition(b":")
    return float(expires), local, body


def _bind(names, numbers=()):
    """Lua locals named after a script's leading ARGV entries, in order (`numbers` converted), and
    `rest`: the position of the first argument after them. A script's Lua and the Python that
    calls it both take the order from one tuple."""
    lines = ["local %s = %s" % (name, "tonumber(ARGV[%d])" % n if name in numbers else "ARGV[%d]" % n)
             for n, name in enumerate(names, 1)]
    return "\n".join(lines + ["local rest = %d" % (len(names) + 1)]) + "\n"


LUA_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function live(item)
    local sep = string.find(item, ':', 1, true)
    return sep and tonumber(string.sub(item, 1, sep - 1)) >= now
end
"""

# The first live message of several lists (KEYS; expired ones are dropped on the way).
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

# Up to `limit` messages of the first non-empty list of KEYS: daphne's reader takes a burst of
# replies (a broadcast to the 500 sockets of one daphne) in a few round trips instead of one each.
POP_MANY_ARGS = ("limit",)
LUA_POP_MANY = LUA_NOW + _bind(POP_MANY_ARGS, numbers=POP_MANY_ARGS) + """
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

# A group's (KEYS[1]) members after dropping those added before `cutoff`: one round trip, not two.
MEMBERS_ARGS = ("cutoff",)
LUA_GROUP_MEMBERS = _bind(MEMBERS_ARGS) + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, cutoff)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

# Pushing to a list below its capacity, counting the layer's statistics (upstream: a second round
# trip per send for its counters); shared by LUA_SEND and LUA_BATCH. Expired messages at the head
# of a list do not count against its capacity. A process-local channel's messages go to the list of
# its non-local part and carry its full name (see the top of this module).
# `wake`: the layer's wake_prefix, for a push to publish on its list's wake channel (once per list
# and script call), or "" (one shard: nothing listens). KEYS: global messages stat, global full stat.
PUSH_ARGS = ("expiry", "channel_ttl", "global_ttl", "prefix", "stats", "wake", "stamp")
PUSH_NUMBERS = ("expiry", "channel_ttl", "global_ttl")
LUA_PUSH = """
local sent, dropped, woken = 0, 0, {}
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
        redis.call('EXPIRE', stats .. list .. ':channel_full_count', channel_ttl)
        return false
    end
    sent = sent + 1
    redis.call('RPUSH', key, stamp .. ':' .. channel .. ':' .. body)
    redis.call('EXPIRE', key, expiry + 1)
    redis.call('INCR', stats .. list .. ':messages_count')
    redis.call('EXPIRE', stats .. list .. ':messages_count', channel_ttl)
    if wake ~= '' and not woken[list] then
        woken[list] = true
        redis.call('PUBLISH', wake .. list, '')
    end
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

# Send to channels (of one shard) in one round trip: a send, or a group send's members. After
# PUSH_ARGS, per channel: name, body, capacity. Returns the positions (from 1) of the full ones.
SEND_FIELDS = ("name", "body", "capacity")
LUA_SEND = LUA_NOW + _bind(PUSH_ARGS, PUSH_NUMBERS) + LUA_PUSH + """
local full = {}
for i = rest, #ARGV, %(fields)d do
    if not push(ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])) then
        full[#full + 1] = (i - rest) / %(fields)d + 1
    end
end
count()
return full
""" % {"fields": len(SEND_FIELDS)}

# Several sends in one round trip on a one-server layer (RedisChannelLayer.send_batch): channels,
# groups (their members read here, not by a round trip of their own), and groups emptied once sent
# to (a long poll's release). Each member's list and capacity derive from its name. When a member is
# on a list whose capacity the caller did not pass, nothing is sent and the unknown lists are
# returned, for the caller to price and try again (so the sends keep their order).
# After PUSH_ARGS and BATCH_ARGS: `priced` (list, capacity) pairs, then per send: kind (a
# BATCH_CODES value), channel name or group key, body, capacity (channels only).
# Returns {positions of the full channel sends (from 1), unknown lists}.
BATCH_ARGS = ("cutoff", "priced")
BATCH_FIELDS = ("kind", "name", "body", "capacity")
BATCH_CODES = {CHANNEL: "c", GROUP: "g", GROUP_ONCE: "o"}
LUA_BATCH = LUA_NOW + _bind(PUSH_ARGS + BATCH_ARGS, PUSH_NUMBERS + ("priced",)) + LUA_PUSH + """
local caps = {}
for i = 0, priced - 1 do caps[ARGV[rest + i * 2]] = tonumber(ARGV[rest + 1 + i * 2]) end
local first = rest + priced * 2
-- Look up every group first: nothing is sent unless every member's list is priced.
local members, unknown, seen = {}, {}, {}
for i = first, #ARGV, %(fields)d do
    if ARGV[i] ~= '%(channel)s' then
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
for i = first, #ARGV, %(fields)d do
    local kind, body = ARGV[i], ARGV[i + 2]
    if kind == '%(channel)s' then
        if not push(ARGV[i + 1], body, tonumber(ARGV[i + 3])) then
            full[#full + 1] = (i - first) / %(fields)d + 1
        end
    else
        for _, member in ipairs(members[i]) do
            push(member, body, caps[split(member)])
        end
        if kind == '%(once)s' then redis.call('DEL', ARGV[i + 1]) end
    end
end
count()
return {full, {}}
""" % {"fields": len(BATCH_FIELDS), "channel": BATCH_CODES[CHANNEL], "once": BATCH_CODES[GROUP_ONCE]}


# A value written (KEYS[1], for `ttl` seconds) and a list's length read (KEYS[2]) in one round trip:
# a channel session saved as a frame is released, with the depth of the socket's wait channel, so
# the frame's worker skips looking for parked frames when there are none.
SET_DEPTH_ARGS = ("value", "ttl")
LUA_SET_DEPTH = _bind(SET_DEPTH_ARGS) + """
redis.call('SET', KEYS[1], value, 'EX', ttl)
return redis.call('LLEN', KEYS[2])
"""


class Scripts(object):
    """A RedisChannelLayer's scripts, registered with its redis-py client; each method builds its
    script's arguments (in the order of the tuples above) and runs it on one shard's client."""

    def __init__(self, layer):
        self.expiry = layer.expiry
        register = layer.connection(0).register_script
        self._pop = register(LUA_POP)
        self._pop_many = register(LUA_POP_MANY)
        self._members = register(LUA_GROUP_MEMBERS)
        self._send = register(LUA_SEND)
        self._batch = register(LUA_BATCH)
        self._set_depth = register(LUA_SET_DEPTH)
        # What LUA_PUSH takes is fixed for the layer but the stamp, which comes last: built once.
        assert PUSH_ARGS[-1] == "stamp"
        self._push_fixed = self._args(PUSH_ARGS[:-1], {
            "expiry": layer.expiry, "channel_ttl": layer.channel_statistics_expiry,
            "global_ttl": layer.global_statistics_expiry, "prefix": layer.prefix,
            "stats": layer.stats_prefix, "wake": wake_prefix(layer.prefix) if layer.ring_size > 1 else ""})
        # LUA_PUSH's KEYS: the layer's global counters.
        self._stat_keys = [layer._stat_key(layer.global_stats_key, stat)
                           for stat in (layer.STAT_MESSAGES_COUNT, layer.STAT_CHANNEL_FULL)]

    @staticmethod
    def _args(names, values):
        return [values[name] for name in names]

    def _push_args(self, expiry=None):
        """LUA_PUSH's arguments; its messages expire after `expiry` seconds (the layer's by default;
        the lists themselves keep the layer's)."""
        return self._push_fixed + [stamp(expiry or self.expiry)]

    def pop(self, client, list_keys):
        """[list key, item] of the first live message of the lists, or None."""
        return self._pop(keys=list_keys, client=client)

    def pop_many(self, client, list_keys, limit):
        """[list key, items...] of up to limit live messages of the first non-empty list, or None."""
        return self._pop_many(keys=list_keys, args=pop_many_args(limit), client=client)

    def members(self, client, group_key, cutoff):
        return self._members(keys=[group_key], args=self._args(MEMBERS_ARGS, {"cutoff": cutoff}),
                             client=client)

    def send(self, client, targets, expiry=None):
        """Push [(channel, body, capacity)], living `expiry` seconds; the positions (from 1) of the
        full ones."""
        args = self._push_args(expiry)
        for target in targets:
            args += target
        return self._send(keys=self._stat_keys, args=args, client=client)

    def batch(self, client, cutoff, capacities, entries):
        """Run [(kind, channel name or group key, body, capacity)] with the lists' capacities
        known so far; (positions of the full channel sends, lists to price first)."""
        args = self._push_args() + self._args(BATCH_ARGS, {"cutoff": cutoff, "priced": len(capacities)})
        for pair in capacities.items():
            args += pair
        for kind, name, body, capacity in entries:
            args += [BATCH_CODES[kind], name, body, capacity]
        full, unknown = self._batch(keys=self._stat_keys, args=args, client=client)
        return full, unknown

    def set_depth(self, client, key, value, ttl, list_key):
        """SET key to value for ttl seconds; the length of list_key (on the same shard)."""
        return self._set_depth(keys=[key, list_key], args=self._args(SET_DEPTH_ARGS, {"value": value, "ttl": ttl}),
                               client=client)


def pop_many_args(limit):
    """LUA_POP_MANY's arguments (daphne's reader runs it with txredisapi's eval)."""
    return Scripts._args(POP_MANY_ARGS, {"limit": limit})

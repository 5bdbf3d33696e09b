"""The Redis channel layer: asgi_redis sharded by channel, with a one-round-trip pop and a persistent
twisted connection for daphne."""
import itertools
import logging
import random
import uuid

import asgi_redis
import redis
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

    def __init__(self, blpop_timeout=None, **kwargs):
        super(RedisChannelLayer, self).__init__(**kwargs)
        if blpop_timeout is not None:
            self.blpop_timeout = blpop_timeout
        self._block_rotation = itertools.count()
        self.popget = self.connection(0).register_script(LUA_POPGET)
        self._twisted = {}  # shard index -> persistent txredisapi connection (daphne's reader)

    def send(self, channel, message):
        assert isinstance(message, dict), "message is not a dict"
        assert self.valid_channel_name(channel), "Channel name not valid"
        assert "__asgi_channel__" not in message
        if "!" in channel:
            message = dict(message.items())
            message["__asgi_channel__"] = channel
            channel = self.non_local_name(channel)
        connection = self.connection(self.consistent_hash(channel))
        try:
            self.chansend(
                keys=[self.prefix + uuid.uuid4().hex, self.prefix + channel],
                args=[self.serialize(message), self.expiry, self.get_capacity(channel)],
                client=connection,
            )
        except redis.exceptions.ResponseError as exc:
            if exc.args[0] == "full":
                self._incr_statistics_counter(self.STAT_CHANNEL_FULL, channel, connection)
                raise self.ChannelFull()
            raise
        self._incr_statistics_counter(self.STAT_MESSAGES_COUNT, channel, connection)

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
            result = self.popget(keys=list_names, client=connection)
            if not result and block:
                popped = connection.blpop(list_names, timeout=self.blpop_timeout)
                if popped:
                    result = [popped[0], connection.get(popped[1])]
                    connection.delete(popped[1])
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
        indexes = self._receive_list_names(channels)
        if indexes is None:
            defer.returnValue((None, None))
        while True:
            expired = False
            for index, list_names in indexes.items():
                connection = self._twisted_connection(index)
                result = yield connection.eval(LUA_POPGET, list_names)
                if not result:
                    popped = yield connection.blpop(list_names, timeout=self.blpop_timeout)
                    if popped:
                        body = yield connection.get(popped[1])
                        connection.delete(popped[1])
                        result = [popped[0], body]
                if result and not result[1]:
                    expired = True
                    continue
                if result:
                    defer.returnValue(self._unpack(result[0], result[1]))
            if not expired:
                defer.returnValue((None, None))

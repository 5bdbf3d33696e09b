"""daphne's reader of the Redis layer (the "twisted" extension): one persistent connection per shard."""
import collections
import logging

from asgi_redis.twisted_utils import defer

from .redis_scripts import LUA_POP_MANY, pop_many_args

logger = logging.getLogger(__name__)


class TwistedReader(object):
    """receive_twisted for a RedisChannelLayer, in daphne's reactor.

    Upstream opens (and closes) a new txredisapi pool for every message daphne reads, which caps a
    daphne at a few hundred replies per second and adds milliseconds to each; here each shard has
    one persistent, self-reconnecting connection. daphne reads only its own process-local reply
    list, which nobody else may read: the reader takes up to `batch` replies per round trip and
    keeps the rest for the next calls (handed over without a generator and its Deferreds: daphne
    calls once per reply).
    """

    def __init__(self, layer, batch=100):
        self.layer = layer
        self.batch = batch
        self.replies = collections.deque()  # popped for daphne, not yet handed over
        self.connections = {}  # shard index -> txredisapi connection
        self.blmpop = None  # whether the server has BLMPOP: unknown until the first wait

    def connection(self, index):
        if index not in self.connections:
            import txredisapi
            kwargs = self.layer.connection(index).connection_pool.connection_kwargs
            self.connections[index] = txredisapi.lazyConnection(
                host=kwargs["host"], port=kwargs["port"], dbid=kwargs["db"],
                password=kwargs.get("password"), reconnect=True, charset=None, convertNumbers=False,
                connectTimeout=5)
        return self.connections[index]

    def receive(self, channels):
        """A Deferred firing with (channel, message), or (None, None) after a wait that found none."""
        if self.replies:
            return defer.succeed(self.replies.popleft())
        return self._receive(channels)

    @defer.inlineCallbacks
    def _receive(self, channels):
        indexes = self.layer._receive_list_names(channels)
        if indexes is None:
            defer.returnValue((None, None))
        limit = self.batch if all("!" in c for c in channels) else 1
        for index, list_names in indexes.items():
            connection = self.connection(index)
            if self.blmpop and len(indexes) == 1:
                # BLMPOP answers at once when something is there: no look first (one round trip
                # per wake-up instead of two). Expired messages are dropped by _unpack.
                items = yield self._block_many(connection, list_names, limit)
            else:
                result = yield connection.eval(LUA_POP_MANY, list_names, pop_many_args(limit))
                if result:
                    items = [(result[0], item) for item in result[1:]]
                else:
                    items = yield self._block_many(connection, list_names, limit)
            unpacked = (self.layer._unpack(key, item) for key, item in items)
            self.replies.extend(found for found in unpacked if found)
            if self.replies:
                defer.returnValue(self.replies.popleft())
        defer.returnValue((None, None))  # daphne calls again at once

    @defer.inlineCallbacks
    def _block_many(self, connection, list_names, limit):
        """Wait for messages: BLMPOP (Redis 7) hands over up to `limit` at once, so a broadcast and
        the ack behind it, pushed by one script, reach daphne in one wake-up; BLPOP (older
        servers) takes one and the rest cost another round trip."""
        timeout = self.layer.blpop_timeout
        if self.blmpop is not False:
            try:
                popped = yield connection.execute_command(
                    "BLMPOP", timeout, len(list_names), *(list_names + ["LEFT", "COUNT", limit]))
                self.blmpop = True
                defer.returnValue([(popped[0], item) for item in popped[1]] if popped else [])
            except Exception as exc:  # txredisapi.ResponseError on a server without BLMPOP
                if self.blmpop or "unknown command" not in str(exc).lower():
                    raise
                logger.info("Redis has no BLMPOP (before 7.0): daphne takes one reply per wake-up")
                self.blmpop = False
        popped = yield connection.blpop(list_names, timeout=timeout)
        defer.returnValue([popped] if popped else [])

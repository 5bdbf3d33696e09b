"""daphne's reader of the Redis layer (the "twisted" extension): one persistent connection per shard."""
import collections
import logging
import time

import redis
from asgi_redis.twisted_utils import defer

from .redis_scripts import LUA_POP_MANY, pop_many_args

logger = logging.getLogger(__name__)

# Errors a shard answers while it is not a usable master: a demoted one (READONLY: every script and
# blocking pop writes), one loading its data after a restart, a replica cut off from its master.
NOT_A_MASTER = ("READONLY", "LOADING", "MASTERDOWN", "UNBLOCKED")


class TwistedReader(object):
    """receive_twisted for a RedisChannelLayer, in daphne's reactor.

    Upstream opens (and closes) a new txredisapi pool for every message daphne reads, which caps a
    daphne at a few hundred replies per second and adds milliseconds to each; here each shard has
    one persistent connection. daphne reads only its own process-local reply list, which nobody else
    may read: the reader takes up to `batch` replies per round trip and keeps the rest for the next
    calls (handed over without a generator and its Deferreds: daphne calls once per reply).

    A shard's connection goes to the address the layer names for it (layer.reader_address): a fixed
    one for a Redis URL, the current master's for a Sentinel layer. When the shard is lost (the
    connection fails, or the server answers that it is no master) the connection is dropped, and the
    next call asks the layer for the address again: a Sentinel's new master after a failover.
    """

    RETRY_DELAY = 0.5  # seconds between attempts on a lost shard (daphne calls again at once)

    def __init__(self, layer, batch=100):
        self.layer = layer
        self.batch = batch
        self.replies = collections.deque()  # popped for daphne, not yet handed over
        self.connections = {}  # shard index -> connected txredisapi connection
        self.lost = {}  # shard index -> when it was lost, until it answers again
        self.blmpop = None  # whether the server has BLMPOP: unknown until the first wait

    @defer.inlineCallbacks
    def connect(self, index):
        """Shard `index`'s connection, opened at the address the layer names for it now."""
        import txredisapi
        host, port, db, password = yield self.layer.reader_address(index)
        try:
            # reconnect=False: txredisapi would otherwise reconnect to this address forever, holding
            # every command until it answers; a failure has to reach _receive to re-ask the address.
            connection = yield txredisapi.Connection(
                host=host, port=port, dbid=db, password=password, reconnect=False, charset=None,
                convertNumbers=False, connectTimeout=5, replyTimeout=self.layer.reader_reply_timeout)
        except Exception as exc:  # ValueError("Redis error: could not connect: ...") for every cause
            raise txredisapi.ConnectionError("%s:%s: %s" % (host, port, exc))
        self.connections[index] = connection
        if index in self.lost:
            logger.info("Redis shard %d answers again at %s:%s, %.1f s after it was lost",
                        index, host, port, time.time() - self.lost.pop(index))
        defer.returnValue(connection)

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
            try:
                connection = self.connections.get(index)
                if connection is None:
                    connection = yield self.connect(index)
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
            except Exception as exc:
                if not self._shard_lost(exc):
                    raise
                # Not raised to daphne, which would log an error and stop reading for 5 s.
                yield self._drop(index, exc)
                defer.returnValue((None, None))
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

    def _shard_lost(self, exc):
        """Whether exc says the shard's server is gone or no master (not a bug of ours)."""
        import txredisapi
        if isinstance(exc, txredisapi.ResponseError):
            return str(exc).startswith(NOT_A_MASTER)
        # txredisapi's for the connection (its TimeoutError too), redis-py's for a Sentinel's answer
        return isinstance(exc, (txredisapi.ConnectionError, redis.ConnectionError, redis.TimeoutError))

    def _drop(self, index, exc):
        """Forget shard `index`'s connection (the next call asks for its address again); a Deferred
        firing after RETRY_DELAY, so that a shard that stays down is not asked in a tight loop."""
        from twisted.internet import reactor, task
        connection = self.connections.pop(index, None)
        if connection is not None:
            connection.disconnect().addErrback(lambda failure: None)  # it may be half gone already
        if index not in self.lost:
            self.lost[index] = time.time()
            logger.warning("Lost Redis shard %d (%s): asking for its address again every %.1f s",
                           index, exc, self.RETRY_DELAY)
        return task.deferLater(reactor, self.RETRY_DELAY, lambda: None)

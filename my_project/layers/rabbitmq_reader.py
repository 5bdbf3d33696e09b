"""daphne's reader of the RabbitMQ layer (the "twisted" extension): one persistent connection."""
import collections
import logging

from .backoff import Backoff

logger = logging.getLogger(__name__)


class TwistedReader(object):
    """receive_twisted for a RabbitmqChannelLayer, in daphne's reactor.

    daphne asks for its own reply channel (its process-local queue) again and again; the reader
    consumes that queue on one connection made with pika's Twisted adapter, with at most
    `layer.PREFETCH_REPLIES` messages unacknowledged, and hands the replies over one per call
    (a group message naming several of daphne's sockets becomes one reply each). A call that
    finds none waits up to the layer's receive_timeout, then answers (None, None) so that daphne
    looks at its reactor again.

    A lost connection is not raised to daphne (which would log an error and stop reading for 5 s):
    the waiting call answers (None, None), and the next ones connect again with backoff.
    """

    def __init__(self, layer):
        self.layer = layer
        self.replies = collections.deque()  # (channel, message), received, not handed over yet
        self.waiter = None  # the Deferred daphne waits on, when there were no replies
        self.connection = None
        self.channel = None
        self.consuming = None  # the queues consumed
        self.retry = Backoff(layer.RETRY_MIN, layer.RETRY_MAX)

    def receive(self, channels):
        """A Deferred firing with (channel, message), or (None, None) after a wait that found none."""
        from twisted.internet import defer
        if self.replies:
            return defer.succeed(self.replies.popleft())
        return self._receive(sorted({self.layer.queue(channel) for channel in channels}))

    def _receive(self, queues):
        from twisted.internet import defer, reactor
        if self.consuming != queues:
            return self._start(queues).addCallback(lambda _: self._receive(queues) if self.consuming else
                                                   (None, None))
        waiter = self.waiter = defer.Deferred()
        timeout = reactor.callLater(self.layer.receive_timeout, self._wake)
        return waiter.addBoth(_cancelling(timeout))

    def _wake(self):
        waiter, self.waiter = self.waiter, None
        if waiter is not None:
            waiter.callback(self.replies.popleft() if self.replies else (None, None))

    def _start(self, queues):
        """Consume `queues` (connecting first if need be); on failure, wait the backoff out."""
        from twisted.internet import defer, reactor, task
        delay = self.retry.wait()
        if delay:
            return task.deferLater(reactor, delay, lambda: None)
        return defer.ensureDeferred(self._consume(queues)).addErrback(self._failed)

    async def _consume(self, queues):
        if self.connection is None:
            await self._connect()
        elif self.consuming:
            for tag in list(self.channel.consumer_tags):
                await self.channel.basic_cancel(tag)
        for queue in queues:
            await self._declare(queue)
            pending, _ = await self.channel.basic_consume(queue)
            self._pump(queue, pending)
        self.consuming = queues
        away = self.retry.succeeded()
        if away:
            logger.info("RabbitMQ at %s answers daphne's reader again after %.1f s", self.layer.where(), away)

    async def _declare(self, queue):
        import pika.exceptions
        try:
            await self.channel.queue_declare(queue, arguments=self.layer.queue_arguments(queue))
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 406:  # PRECONDITION_FAILED: declared by another release's sizes
                raise
            self.layer.arguments_differ(queue)
            await self._open_channel()
            await self.channel.queue_declare(queue, passive=True)

    async def _open_channel(self):
        self.channel = await self.connection.channel()
        await self.channel.basic_qos(prefetch_count=self.layer.PREFETCH_REPLIES)

    async def _connect(self):
        from pika.adapters.twisted_connection import TwistedProtocolConnection
        from twisted.internet import endpoints, reactor
        parameters = self.layer.parameters
        endpoint = endpoints.TCP4ClientEndpoint(reactor, parameters.host, parameters.port,
                                                timeout=parameters.socket_timeout)
        connection = await endpoints.connectProtocol(endpoint, TwistedProtocolConnection(parameters))
        connection.transport.setTcpNoDelay(True)  # replies are small: no Nagle delay on the acks
        await connection.ready
        self.connection = connection
        connection.closed.addBoth(lambda reason: self._lost(reason) if self.connection is connection else None)
        await self._open_channel()

    def _pump(self, queue, pending):
        """Move each message of a consumer's queue into the replies, acknowledged, until it closes."""
        def delivered(received):
            received.channel.basic_ack(received.method.delivery_tag)
            self.replies.extend(self.layer.unpack(queue, received.body))
            self._wake()
            pending.get().addCallbacks(delivered, lambda failure: None)  # closed: _lost says so
        pending.get().addCallbacks(delivered, lambda failure: None)

    def _failed(self, failure):
        self._lost(failure)
        return None

    def _lost(self, reason):
        """The connection closed or failed: forget it, wake daphne, connect again later."""
        error = getattr(reason, "value", reason)
        if self.connection is not None or self.retry.failures == 0:
            logger.warning("daphne's reader lost RabbitMQ at %s (%s): connecting again with backoff",
                           self.layer.where(), error)
        self.retry.failed(str(error))
        connection, self.connection, self.channel, self.consuming = self.connection, None, None, None
        if connection is not None and connection.is_open:
            connection.close()
        self._wake()
        return None


def _cancelling(call):
    """A callback that cancels a pending delayed call and passes its result on."""
    def cancel(result):
        if call.active():
            call.cancel()
        return result
    return cancel

"""Daphne's Server with limits and behaviour its command line does not offer."""
import logging

from daphne.http_protocol import WebRequest
from daphne.server import Server
from twisted.internet import reactor
from twisted.web import http

logger = logging.getLogger(__name__)


class LimitedServer(Server):
    """daphne.server.Server whose WebSocket frames and messages have a size limit.

    Daphne 1.4 leaves autobahn's limits at 0 (unlimited): one client could make a daphne buffer a
    frame of any size before the application's own 16 KiB check sees it, and nginx cannot look
    inside WebSocket frames. The factory only exists once run() has started, so the limit is applied
    as the reactor starts, before any connection is accepted.
    """

    def __init__(self, *args, **kwargs):
        self.max_message_bytes = kwargs.pop("max_message_bytes")
        super(LimitedServer, self).__init__(*args, **kwargs)

    def run(self):
        reactor.callWhenRunning(self.configure_factory)
        super(LimitedServer, self).run()

    def configure_factory(self):
        self.factory.ws_factory.setProtocolOptions(
            maxFramePayloadSize=self.max_message_bytes, maxMessagePayloadSize=self.max_message_bytes)
        logger.info("WebSocket frames and messages limited to %d bytes", self.max_message_bytes)
        # twisted formats a combined-log line for every request into its own logger, which nothing
        # here observes (nginx keeps the access log): a few percent of daphne's time per page.
        self.factory.log = lambda request: None
        build = self.factory.buildProtocol

        def build_protocol(addr):
            protocol = build(addr)
            if protocol is not None:
                protocol.requestFactory = AnsweredRequest
            return protocol
        self.factory.buildProtocol = build_protocol


class AnsweredRequest(WebRequest):
    """daphne's HTTP request, without an http.disconnect once its response is complete.

    daphne 1.4 sends http.disconnect when it finishes every response, synchronously and before the
    last bytes go out: one more layer round trip on every page's critical path and one more message
    for the realtime pool per page (which has nothing to do with it: the reply channel is done).
    A client that leaves before its response is complete still gets one (connectionLost), which is
    what long-polls need it for.
    """

    def finish(self):
        if self.reply_channel and self.reply_channel in self.channel.factory.reply_protocols:
            del self.channel.factory.reply_protocols[self.reply_channel]
        http.Request.finish(self)

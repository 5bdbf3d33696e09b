"""Daphne's Server with limits its command line does not offer."""
import logging

from daphne.server import Server
from twisted.internet import reactor

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
        reactor.callWhenRunning(self.apply_limits)
        super(LimitedServer, self).run()

    def apply_limits(self):
        self.factory.ws_factory.setProtocolOptions(
            maxFramePayloadSize=self.max_message_bytes, maxMessagePayloadSize=self.max_message_bytes)
        logger.info("WebSocket frames and messages limited to %d bytes", self.max_message_bytes)

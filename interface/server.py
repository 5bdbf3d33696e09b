"""Daphne's Server with limits and behaviour its command line does not offer."""
import logging
import re
import socket

from daphne.http_protocol import WebRequest
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import reactor
from twisted.web import http

logger = logging.getLogger(__name__)


class LimitedServer(Server):
    """daphne.server.Server whose WebSocket frames and messages have a size limit, answered by a
    closing handshake, and whose empty WebSocket messages are sent.

    Daphne 1.4 leaves autobahn's limits at 0 (unlimited): one client could make a daphne buffer a
    frame of any size before the application's own 16 KiB check sees it, and nginx cannot look
    inside WebSocket frames. autobahn fails a connection by dropping it (failByDrop): a frame over
    the limit got a TCP reset; RFC 6455 (7.1.7, 7.4.1) wants close code 1009 and a closing handshake.
    The factory only exists once run() has started, so it is configured as the reactor starts,
    before any connection is accepted.
    """

    def __init__(self, *args, **kwargs):
        self.max_message_bytes = kwargs.pop("max_message_bytes")
        super(LimitedServer, self).__init__(*args, **kwargs)

    def run(self):
        reactor.callWhenRunning(self.configure_factory)
        super(LimitedServer, self).run()

    def configure_factory(self):
        self.factory.ws_factory.setProtocolOptions(
            maxFramePayloadSize=self.max_message_bytes, maxMessagePayloadSize=self.max_message_bytes,
            failByDrop=False)
        self.factory.dispatch_reply = send_empty_messages(self.factory)
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
        for listener in self.listeners:  # Deferreds of the listening ports
            listener.addCallback(without_nagle)


def without_nagle(port):
    """Turn Nagle's algorithm off on a TCP listening port (an interface host of a cluster; Unix
    sockets have none): Linux hands TCP_NODELAY on to every connection accepted there. Twisted
    leaves it on, and a frame written while the one before was unacknowledged (a chat message's
    broadcast, then its ack, read from the layer in two wake-ups) waited for nginx's delayed ACK:
    chat round trip p50 44 ms on the sharded cluster."""
    sock = getattr(port, "socket", None)
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return port


def send_empty_messages(factory):
    """factory.dispatch_reply, sending the WebSocket messages daphne 1.4 drops: it tests a reply's
    "text" and "bytes" for truth, so an empty text or binary message (an echo of one) never went out.
    The rest of the reply (accept before, close after) is still daphne's to handle, in its order."""
    dispatch = factory.dispatch_reply

    def dispatch_reply(channel, message):
        protocol = factory.reply_protocols.get(channel)
        empty = [(key, key == "bytes") for key in ("bytes", "text") if message.get(key) in (b"", "")]
        if not empty or not isinstance(protocol, WebSocketProtocol) or message.get("accept") is False:
            return dispatch(channel, message)
        if message.get("accept"):
            dispatch(channel, {"accept": True})
        for key, binary in empty:
            protocol.serverSend(message[key], binary)
        rest = {key: value for key, value in message.items() if key not in ("accept", "bytes", "text")}
        if rest:  # close
            dispatch(channel, rest)
    return dispatch_reply


# What autobahn's str.splitlines() ends a line at (it reads the handshake as ISO-8859-1), besides the
# \r and \n Twisted already splits headers on.
LINE_BREAKS = re.compile(b"[\r\n\x0b\x0c\x1c\x1d\x1e\x85]")


def splits_lines(request):
    """True if the request line or a header holds a byte autobahn would end a line at."""
    return bool(LINE_BREAKS.search(request.uri)) or any(
        LINE_BREAKS.search(name) or any(LINE_BREAKS.search(value) for value in values)
        for name, values in request.requestHeaders.getAllRawHeaders())


class AnsweredRequest(WebRequest):
    """daphne's HTTP request, without an http.disconnect once its response is complete.

    daphne 1.4 sends http.disconnect when it finishes every response, synchronously and before the
    last bytes go out: one more layer round trip on every page's critical path and one more message
    for the realtime pool per page (which has nothing to do with it: the reply channel is done).
    A client that leaves before its response is complete still gets one (connectionLost), which is
    what long-polls need it for.
    """

    def process(self):
        """A WebSocket handshake holding a byte autobahn ends a line at gets 400 (CVE-2026-44546):
        daphne 1.4 writes the handshake out again for autobahn, which would read `X-A: a\x0bX-B: b`
        as two headers, the second one the client's own (a forged X-Forwarded-For, for one)."""
        upgrade = self.requestHeaders.getRawHeaders(b"Upgrade") or [b""]
        if upgrade[0].lower() == b"websocket" and splits_lines(self):
            logger.info("Refused a WebSocket handshake with a line break inside a header")
            self.basic_error(400, b"Bad Request", "A header holds a control character.")
            return
        # daphne 1.4 takes the request's script prefix (ASGI root_path) from a Daphne-Root-Path
        # header of the client's own; the site is served at / (daphne's --root-path, empty), so a
        # client may not move the links Django builds for it: the header is dropped, whoever sent it.
        self.requestHeaders.removeHeader(b"Daphne-Root-Path")
        super(AnsweredRequest, self).process()

    def finish(self):
        if self.reply_channel and self.reply_channel in self.channel.factory.reply_protocols:
            del self.channel.factory.reply_protocols[self.reply_channel]
        http.Request.finish(self)

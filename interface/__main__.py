"""`python -m interface`: a daphne interface server (interface.server.LimitedServer) on the
deployment's Unix socket number N, or on the endpoints given, over the layer of the CHAT_* settings.

Imports no Django: the layer comes from my_project.base_settings, the class named there.
"""
import argparse
import importlib
import logging
import sys

from my_project import base_settings, logfilter
from my_project.env import ImproperlyConfigured
from my_project.gcfreeze import freeze_startup


def parser():
    arguments = argparse.ArgumentParser(prog="python -m interface", description=__doc__.split("\n\n")[0])
    arguments.add_argument("--socket-index", type=int,
                           help="listen as the deployment's daphne of this number (supervisord's process_num): "
                                "its Unix socket, or its TCP port on CHAT_HOST_ADDRESS")
    arguments.add_argument("--endpoint", action="append", default=[],
                           help="a twisted endpoint, e.g. unix:/path.sock or tcp:8001 (repeatable)")
    arguments.add_argument("--http-timeout", type=int, default=base_settings.CHAT_HTTP_TIMEOUT,
                           help="seconds without a worker's answer before a 503 (CHAT_HTTP_TIMEOUT)")
    # One value per flag: daphne's own --ws-protocol takes any number and swallows what follows.
    arguments.add_argument("--ws-protocol", action="append", dest="ws_protocols",
                           help="a WebSocket subprotocol to select when offered (repeatable; "
                                "default CHAT_WS_PROTOCOLS)")
    arguments.add_argument("--ping-interval", type=int, default=20)
    arguments.add_argument("--ping-timeout", type=int, default=30)
    arguments.add_argument("--max-message-bytes", type=int, default=64 * 1024,
                           help="largest WebSocket frame or message accepted (bytes)")
    return arguments


def proxy_headers():
    """daphne's forwarded-header options: behind nginx (or a platform's router) it takes the client's
    address, port and scheme from them; with nothing in front (CHAT_PROXY_HOPS=0) they are the
    client's own and daphne reads none."""
    if not base_settings.CHAT_PROXY_HOPS:
        return {}
    return {"proxy_forwarded_address_header": "X-Forwarded-For", "proxy_forwarded_port_header": "X-Forwarded-Port",
            "proxy_forwarded_proto_header": "X-Forwarded-Proto"}


def channel_layer():
    """The layer the settings name, built as channels would build it, without channels."""
    config = base_settings.CHANNEL_LAYERS["default"]
    module, _, name = config["BACKEND"].rpartition(".")
    return getattr(importlib.import_module(module), name)(**config["CONFIG"])


# autobahn's own opening-handshake timeout (daphne's handshake timeout, 5 s by default) is daphne's
# connect timeout here: at 5 s a burst queued in websocket.connect behind a busy pool was dropped
# (nginx answered 502) while the workers still ran each dropped handshake's connect, and a reconnect
# storm of 10,000 sockets collapsed into refusals (bench sockets scenario).
CONNECT_TIMEOUT = base_settings.CHAT_CONNECT_TIMEOUT


def main(argv=None):
    options = parser().parse_args(argv)
    endpoints = list(options.endpoint)
    if options.socket_index is not None:
        endpoints.append(base_settings.CHAT_NETWORK.daphne_endpoint(options.socket_index))
    if not endpoints:
        parser().error("give --socket-index N or --endpoint ENDPOINT")
    logging.basicConfig(format=base_settings.CHAT_LOG_FORMAT, level=base_settings.CHAT_LOG_LEVEL)
    logfilter.install()  # as settings.LOGGING's handlers: no client text forges a line
    for name, level in base_settings.CHAT_QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    from .server import LimitedServer  # twisted's reactor: installed once the arguments are good
    server = LimitedServer(
        channel_layer=channel_layer(),
        endpoints=endpoints,
        http_timeout=options.http_timeout,
        ws_protocols=options.ws_protocols or base_settings.CHAT_WS_PROTOCOLS,
        ping_interval=options.ping_interval,
        ping_timeout=options.ping_timeout,
        **proxy_headers(),
        max_message_bytes=options.max_message_bytes,
        websocket_connect_timeout=CONNECT_TIMEOUT,
        websocket_handshake_timeout=CONNECT_TIMEOUT,
    )
    freeze_startup()
    server.run()


if __name__ == "__main__":
    try:
        main()
    except ImproperlyConfigured as exc:  # a wrong CHAT_* setting: one line, as manage.py says it
        sys.exit("error: %s" % exc)

"""`manage.py rundaphne`: a daphne interface server (ops.interface.LimitedServer) on the deployment's
Unix socket number N, or on the endpoints given.

`daphne my_project.asgi:channel_layer` runs the same server without the frame size limit.
"""
from channels import DEFAULT_CHANNEL_LAYER, channel_layers
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from my_project.gcfreeze import freeze_startup
from ops.interface import LimitedServer

# backlog: twisted's default of 50 refuses the 51st simultaneous connect on a Unix socket (nginx 502).
SOCKET_ENDPOINT = "unix:%s:lockfile=1:backlog=1024"


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--socket-index", type=int,
                            help="listen on the deployment's daphne socket of this number (supervisord's process_num)")
        parser.add_argument("--endpoint", action="append", default=[],
                            help="a twisted endpoint, e.g. unix:/path.sock or tcp:8001 (repeatable)")
        parser.add_argument("--http-timeout", type=int, default=settings.CHAT_HTTP_TIMEOUT,
                            help="seconds without a worker's answer before a 503 (CHAT_HTTP_TIMEOUT)")
        # One value per flag: daphne's own --ws-protocol takes any number and swallows what follows.
        parser.add_argument("--ws-protocol", action="append", dest="ws_protocols",
                            help="a WebSocket subprotocol to select when offered (repeatable; "
                                 "default CHAT_WS_PROTOCOLS)")
        parser.add_argument("--ping-interval", type=int, default=20)
        parser.add_argument("--ping-timeout", type=int, default=30)
        parser.add_argument("--max-message-bytes", type=int, default=64 * 1024,
                            help="largest WebSocket frame or message accepted (bytes)")

    def handle(self, *args, **options):
        endpoints = list(options["endpoint"])
        if options["socket_index"] is not None:
            endpoints.append(SOCKET_ENDPOINT % settings.CHAT_PATHS.daphne_socket(options["socket_index"]))
        if not endpoints:
            raise CommandError("give --socket-index N or --endpoint ENDPOINT")
        freeze_startup()
        LimitedServer(
            channel_layer=channel_layers[DEFAULT_CHANNEL_LAYER].channel_layer,
            endpoints=endpoints,
            http_timeout=options["http_timeout"],
            ws_protocols=options["ws_protocols"] or settings.CHAT_WS_PROTOCOLS,
            ping_interval=options["ping_interval"],
            ping_timeout=options["ping_timeout"],
            # Behind nginx: trust its forwarded client address, port and scheme.
            proxy_forwarded_address_header="X-Forwarded-For",
            proxy_forwarded_port_header="X-Forwarded-Port",
            proxy_forwarded_proto_header="X-Forwarded-Proto",
            max_message_bytes=options["max_message_bytes"],
            verbosity=options["verbosity"],
        ).run()

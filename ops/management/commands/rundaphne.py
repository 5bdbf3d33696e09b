"""`manage.py rundaphne`: a daphne interface server (ops.interface.LimitedServer) on the endpoints given.

`daphne my_project.asgi:channel_layer` runs the same server without the frame size limit.
"""
from channels import DEFAULT_CHANNEL_LAYER, channel_layers
from django.core.management.base import BaseCommand

from my_project.gcfreeze import freeze_startup
from ops.interface import LimitedServer


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--endpoint", action="append", required=True,
                            help="a twisted endpoint, e.g. unix:/path.sock or tcp:8001 (repeatable)")
        parser.add_argument("--http-timeout", type=int, default=120)
        parser.add_argument("--ping-interval", type=int, default=20)
        parser.add_argument("--ping-timeout", type=int, default=30)
        parser.add_argument("--max-message-bytes", type=int, default=64 * 1024,
                            help="largest WebSocket frame or message accepted (bytes)")

    def handle(self, *args, **options):
        freeze_startup()
        LimitedServer(
            channel_layer=channel_layers[DEFAULT_CHANNEL_LAYER].channel_layer,
            endpoints=options["endpoint"],
            http_timeout=options["http_timeout"],
            ping_interval=options["ping_interval"],
            ping_timeout=options["ping_timeout"],
            # Behind nginx: trust its forwarded client address, port and scheme.
            proxy_forwarded_address_header="X-Forwarded-For",
            proxy_forwarded_port_header="X-Forwarded-Port",
            proxy_forwarded_proto_header="X-Forwarded-Proto",
            max_message_bytes=options["max_message_bytes"],
            verbosity=options["verbosity"],
        ).run()

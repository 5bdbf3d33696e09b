"""Project channel routing: the apps' routes under their path prefixes, plus the non-HTTP channels.

Any other http.request falls through to channels' ViewConsumer (the Django views), appended by the router.
"""
from .routing_include import include

channel_routing = [
    include("ops.routing.websocket_routing", path=r"^/ws"),
    include("chat.routing.websocket_routing", path=r"^/ws"),
    include("chat.routing.poll_routing", path=r"^/poll"),
    include("chat.routing.channel_routing"),
    include("notifications.routing.channel_routing"),
    include("ops.routing.channel_routing"),
]

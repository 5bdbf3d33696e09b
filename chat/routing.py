"""The chat app's channel routes; the project mounts them under /ws and /poll."""
from channels.routing import route

from . import consumers, delivery, moderation, poll

websocket_routing = [
    route("websocket.connect", consumers.ws_connect, path=r"^/rooms/(?P<slug>[-\w]+)/$"),
    route("websocket.receive", consumers.ws_receive, path=r"^/rooms/(?P<slug>[-\w]+)/$"),
    route("websocket.disconnect", consumers.ws_disconnect, path=r"^/rooms/(?P<slug>[-\w]+)/$"),
]

poll_routing = [
    route("http.request", poll.poll_request, path=r"^/rooms/(?P<slug>[-\w]+)/$"),
    # daphne reports every closed long-poll; the room's group forgets it at the next message anyway.
    route("http.disconnect", poll.poll_disconnect),
]

# Channels that are not tied to a client: the background pool takes background.*.
channel_routing = [
    route(delivery.MODERATION_CHANNEL, moderation.moderate),
    route(poll.EXPIRE_CHANNEL, poll.poll_expire),
]

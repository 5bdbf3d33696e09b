"""The notifications' channel routes: the notify job, on a background.* channel (the background pool)."""
from channels.routing import route

from chat.delivery import NOTIFY_CHANNEL

from . import consumers

channel_routing = [
    route(NOTIFY_CHANNEL, consumers.notify),
]

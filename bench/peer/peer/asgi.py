"""The peer's ASGI application: /ws/echo/ and /ws/rooms/<slug>/ as in the project."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peer.settings")
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from .consumers import Echo, Room  # noqa: E402

application = ProtocolTypeRouter({
    "http": django_application,
    "websocket": URLRouter([
        path("ws/echo/", Echo.as_asgi()),
        path("ws/rooms/<slug:slug>/", Room.as_asgi()),
    ]),
})

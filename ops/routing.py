"""Routes of the diagnostic consumers."""
from channels.routing import route

from . import consumers

websocket_routing = [
    route("websocket.connect", consumers.echo_connect, path=r"^/echo/$"),
    route("websocket.receive", consumers.echo_receive, path=r"^/echo/$"),
]

# diag.* is served by the default pool, background.probe by the background pool. Mounted after the
# chat's routes: the http.disconnect route catches what the chat's long-poll route did not.
channel_routing = [
    route("http.disconnect", consumers.page_disconnect),
    route("diag.probe", consumers.probe),
    route("background.probe", consumers.probe),
]

"""The project's routing (with its copy-free include) sends each message where channels' would."""
import pytest
from channels import routing as upstream
from channels.message import Message

from chat import consumers, poll
from my_project.routing import channel_routing
from my_project.routing_include import lighten
from ops import consumers as ops_consumers


def route(channel, content):
    """(consumer, kwargs) as the project's router picks it, and as channels' own include would."""
    message = Message(dict(content), channel, None)
    ours = lighten(upstream.Router(channel_routing)).match(message)
    theirs = upstream.Router([upstream.Include(entry.routing, **{
        name: regex.pattern for name, regex in entry.prefixes.items()}) for entry in channel_routing]
    ).match(Message(dict(content), channel, None))
    assert ours == theirs
    assert message.content == content  # the consumer gets the message as it came
    return ours


def test_routes_match_channels_include():
    """Sockets, polls, pages and plain channels reach the same consumers with the same arguments."""
    assert route("websocket.receive", {"path": "/ws/rooms/lobby/", "reply_channel": "d!x", "order": 1}) == (
        consumers.ws_receive, {"slug": "lobby"})
    assert route("websocket.connect", {"path": "/ws/echo/", "reply_channel": "d!x"})[0] == ops_consumers.echo_connect
    assert route("http.request", {"path": "/poll/rooms/lobby/", "reply_channel": "d!y"}) == (
        poll.poll_request, {"slug": "lobby"})
    assert route("http.request", {"path": "/healthz", "reply_channel": "d!z"}) is None  # -> the views
    assert route("background.moderate", {"message_id": 1})[0].__name__ == "moderate"


def test_lightened_root_keeps_default_routes(monkeypatch):
    """A worker's router with the project's root include still gets channels' default routes
    (the Django views for pages) and copies no message on the way."""
    from channels.handler import ViewConsumer
    router = lighten(upstream.Router(channel_routing))
    router.check_default()
    monkeypatch.setattr(Message, "copy", lambda self: pytest.fail("a message was copied"))
    found = router.match(Message({"path": "/healthz", "reply_channel": "d!z"}, "http.request", None))
    assert isinstance(found[0], ViewConsumer)
    assert "http.request" in router.channels

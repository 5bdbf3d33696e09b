"""The project's routing (with its copy-free include) sends each message where channels' would."""
from channels import routing as upstream
from channels.message import Message

from chat import consumers, poll
from my_project.routing import channel_routing
from ops import consumers as ops_consumers


def route(channel, content):
    """(consumer, kwargs) as the project's router picks it, and as channels' own include would."""
    message = Message(dict(content), channel, None)
    ours = upstream.Router(channel_routing).match(message)
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

"""Long-poll over daphne: GET /poll/rooms/<slug>/?after=<id> (run by the realtime pool)."""
import json
import logging
import os

from channels.auth import http_session_user
from channels.handler import AsgiRequest
from django.conf import settings

from .models import Message, Room

logger = logging.getLogger(__name__)


def response(status, body):
    """An ASGI http.response message with a JSON body."""
    return {
        "status": status,
        "headers": [
            [b"content-type", b"application/json"],
            [b"cache-control", b"no-store"],
            [b"x-served-by", ("%s/%d" % (settings.POOL, os.getpid())).encode()],
        ],
        "content": json.dumps(body).encode(),
    }


def parse_after(value):
    """The `after` query parameter: a non-negative integer, 0 when absent."""
    try:
        after = int(value or 0)
    except ValueError:
        return None
    return after if after >= 0 else None


@http_session_user
def poll_request(message, slug):
    """Answer with the room's messages after `after`."""
    if not message.user.is_authenticated:
        message.reply_channel.send(response(403, {"type": "error", "code": "login_required",
                                                 "detail": "log in first"}))
        return
    room = Room.objects.filter(slug=slug).first()
    if room is None:
        message.reply_channel.send(response(404, {"type": "error", "code": "unknown_room",
                                                 "detail": "no room %r" % slug}))
        return
    after = parse_after(AsgiRequest(message).GET.get("after"))
    if after is None:
        message.reply_channel.send(response(400, {"type": "error", "code": "invalid_after",
                                                 "detail": "after must be a non-negative integer"}))
        return
    frames = [m.as_frame() for m in Message.objects.after(after).filter(room=room).select_related("user", "room")]
    message.reply_channel.send(response(200, frames))

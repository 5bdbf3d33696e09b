"""Long-poll over daphne: GET /poll/rooms/<slug>/?after=<id> (run by the realtime pool).

With nothing new, the request's reply channel waits in a group for the room's next message, so no
worker is held; channels' delay server answers [] after CHAT_POLL_HOLD seconds if nothing came.
"""
import json
import logging

from channels import Channel, Group
from channels.auth import http_session_user
from channels.handler import AsgiRequest
from django.conf import settings

from my_project.headers import asgi_headers
from ops import identity

from .models import Message, Room

logger = logging.getLogger(__name__)

EXPIRE_CHANNEL = "chat.poll_expire"


def response(status, body):
    """An ASGI http.response message with a JSON body."""
    return {
        "status": status,
        "headers": [
            [b"content-type", b"application/json"],
            [b"cache-control", b"no-store"],
            [b"x-served-by", identity.tag().encode()],
        ] + asgi_headers(),  # not through Django's middleware: its security headers here
        "content": json.dumps(body).encode(),
    }


def error(status, code, detail):
    return response(status, {"type": "error", "code": code, "detail": detail})


def parse_after(value):
    """The `after` query parameter: a non-negative integer, 0 when absent; None when malformed."""
    try:
        after = int(value or 0)
    except ValueError:
        return None
    return after if after >= 0 else None


def _frames(room, after):
    return [m.as_frame() for m in Message.objects.after(after).filter(room=room).select_related("user", "room")[:1000]]


@http_session_user
def poll_request(message, slug):
    """Answer with the room's messages after `after`, or hold the request until there are some."""
    if not message.user.is_authenticated:
        message.reply_channel.send(error(403, "login_required", "log in first"))
        return
    room = Room.objects.filter(slug=slug).first()
    if room is None:
        message.reply_channel.send(error(404, "unknown_room", "no room %r" % slug))
        return
    if not room.admits(message.user):
        message.reply_channel.send(error(403, "not_a_member", "room %r is private" % slug))
        return
    after = parse_after(AsgiRequest(message).GET.get("after"))
    if after is None:
        message.reply_channel.send(error(400, "invalid_after", "after must be a non-negative integer"))
        return
    frames = _frames(room, after)
    if frames:
        message.reply_channel.send(response(200, frames))
        return
    # Wait for the next id the room will hand out (a client claiming a later one gets that too).
    waiting_for = Room.objects.values_list("last_seq", flat=True).get(pk=room.pk)
    group = room.poll_group(waiting_for)
    Group(group).add(message.reply_channel)
    # A message stored between the query and the join went to the group before we were in it.
    frames = _frames(room, after)
    if frames:
        Group(group).discard(message.reply_channel)
        message.reply_channel.send(response(200, frames))
        return
    Channel("asgi.delay").send({
        "channel": EXPIRE_CHANNEL,
        "delay": settings.CHAT_POLL_HOLD * 1000,
        "content": {"reply_channel": message.reply_channel.name, "group": group},
    })


def poll_disconnect(message):
    """Consumer of http.disconnect: nothing to do, but left unconsumed the channel fills up."""


def poll_expire(message):
    """Consumer of chat.poll_expire (the default pool): nothing came in time, answer []."""
    reply = message.content["reply_channel"]
    Group(message.content["group"]).discard(reply)
    # If the poll was answered already daphne no longer knows the channel and drops this.
    Channel(reply).send(response(200, []))

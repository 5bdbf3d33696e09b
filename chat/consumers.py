"""WebSocket consumers of a room: join, chat, leave (run by the realtime pool)."""
import logging

from channels import Channel, Group
from channels.auth import channel_session_user, channel_session_user_from_http
from channels.security.websockets import allowed_hosts_only

from . import protocol
from .exceptions import ClientError
from .models import Message, Room

logger = logging.getLogger(__name__)

MODERATION_CHANNEL = "background.moderate"


def _room(message):
    return Room.objects.get(slug=message.channel_session["room"])


@allowed_hosts_only
@channel_session_user_from_http
def ws_connect(message, slug):
    """Accept a logged-in user into an existing room; anything else is refused at the handshake."""
    room = Room.objects.filter(slug=slug).first()
    if not message.user.is_authenticated or room is None:
        logger.info("Refused socket for room %r (user %s)", slug, message.user)
        message.reply_channel.send({"close": True})
        return
    message.channel_session["room"] = room.slug
    # Accept before joining the group: a broadcast must never overtake the handshake.
    message.reply_channel.send({"accept": True}, immediately=True)
    Group(room.group).add(message.reply_channel)


@channel_session_user
def ws_receive(message, slug):
    """Handle one client frame; a bad one gets an error frame and the socket stays open."""
    try:
        frame = protocol.parse(message.content.get("text"))
        if frame["type"] == "ping":
            message.reply_channel.send(protocol.encode({"type": "pong"}))
        else:
            _post(message, frame)
    except ClientError as error:
        message.reply_channel.send(protocol.encode(error.as_frame()))


def _post(message, frame):
    room = _room(message)
    stored, created = Message.post(room, message.user, frame["client_id"], frame["text"])
    # A resend is broadcast again too: the first try may have died between storing and sending.
    # Clients drop ids they have seen, so members get it exactly once.
    Group(room.group).send(protocol.encode(stored.as_frame()))
    message.reply_channel.send(protocol.encode(
        {"type": "ack", "client_id": stored.client_id, "id": stored.seq}))
    if created:
        Channel(MODERATION_CHANNEL).send({"message_id": stored.pk})


@channel_session_user
def ws_disconnect(message, slug):
    room_slug = message.channel_session.get("room")
    if room_slug:
        Group(Room(slug=room_slug).group).discard(message.reply_channel)

"""WebSocket consumers of a room: join, chat, leave (run by the realtime pool)."""
import logging

from channels import Channel, Group
from channels.auth import channel_session_user_from_http
from channels.security.websockets import allowed_hosts_only
from django.conf import settings
from django.utils import timezone

from . import poll, protocol, ratelimit, sockets
from .exceptions import ClientError
from .models import Message, Presence, Room
from .ordering import ordered

logger = logging.getLogger(__name__)

MODERATION_CHANNEL = "background.moderate"


@allowed_hosts_only
@ordered
@channel_session_user_from_http
def ws_connect(message, slug):
    """Accept a logged-in user into an existing room; anything else is refused at the handshake."""
    room = Room.objects.filter(slug=slug).first()
    if not message.user.is_authenticated or room is None:
        logger.info("Refused socket for room %r (user %s)", slug, message.user)
        message.reply_channel.send({"close": True})
        return
    sockets.remember(message.channel_session, message.user, room)
    # Accept before joining the group: a broadcast must never overtake the handshake.
    message.reply_channel.send({"accept": True}, immediately=True)
    Group(room.group).add(message.reply_channel)
    first = not Presence.live(room).filter(user=message.user).exists()
    Presence.objects.update_or_create(
        reply_channel=message.reply_channel.name, defaults={"room": room, "user": message.user})
    _presence(room, "join", message.user, joiner=message.reply_channel, announce=first)


@ordered
@sockets.socket_user
def ws_receive(message, slug):
    """Handle one client frame; a bad one gets an error frame and the socket stays open."""
    room = message.room
    if room is None:  # a frame of a socket refused at the handshake: nothing to answer
        return
    try:
        ratelimit.spend(message.channel_session)
        frame = protocol.parse(message.content.get("text"))
        if frame["type"] == "ping":
            Presence.objects.filter(reply_channel=message.reply_channel.name).update(seen=timezone.now())
            # Joining again is idempotent and refreshes the membership: a socket whose group entry
            # was lost (a Redis restart without persistence) is back in the room within one ping.
            Group(room.group).add(message.reply_channel)
            message.reply_channel.send(protocol.encode({"type": "pong"}))
        else:
            _post(message, room, frame)
    except ClientError as error:
        message.reply_channel.send(protocol.encode(error.as_frame()))


def _post(message, room, frame):
    stored, created = Message.post(room, message.user, frame["client_id"], frame["text"])
    # The message is committed: its broadcast and ack go out at once (channels would hold them until
    # the consumer returns), and the work nobody waits for comes after them.
    # A resend is broadcast again too: the first try may have died between storing and sending.
    # Clients drop ids they have seen, so members get it exactly once.
    send_to_room(room, stored)
    try:
        message.reply_channel.send(protocol.encode(
            {"type": "ack", "client_id": stored.client_id, "id": stored.seq}), immediately=True)
    except message.channel_layer.ChannelFull:  # the client resends and gets the same ack
        logger.warning("No room for the ack of message %d on %s", stored.pk, message.reply_channel)
    if created:
        queue_moderation(stored)
    poll.release(room, stored)


def queue_moderation(stored):
    """Hand the message to the background pool; when that queue is full, skip scoring it rather
    than stall this realtime worker (a deferred send would retry for 2 s, then raise)."""
    channel = Channel(MODERATION_CHANNEL)
    try:
        channel.send({"message_id": stored.pk}, immediately=True)
    except channel.channel_layer.ChannelFull:
        logger.warning("%s is full: message %d goes unscored", MODERATION_CHANNEL, stored.pk)


def send_to_room(room, stored):
    """A stored message to every socket in the room."""
    Group(room.group).send(protocol.encode(stored.as_frame()), immediately=True)


def broadcast(room, stored):
    """A stored message to every socket in the room and every long-poll waiting for it."""
    send_to_room(room, stored)
    poll.release(room, stored)


@sockets.socket_user
def ws_disconnect(message, slug):
    """Leave the room's group; announce the user left when this was their last socket there."""
    room = message.room
    if room is None:
        return
    Group(room.group).discard(message.reply_channel)
    Presence.objects.filter(reply_channel=message.reply_channel.name).delete()
    if not Presence.live(room).filter(user=message.user).exists():
        _presence(room, "leave", message.user, announce=True)


def _presence(room, event, user, joiner=None, announce=True):
    """Tell the room who joined or left, with who is online. A join or leave goes to every member,
    which is members² frames while a big room fills: past CHAT_PRESENCE_BROADCAST_MAX sockets only
    the joiner hears it (so it still learns who is online)."""
    frame = protocol.encode({"type": "presence", "event": event, "user": user.get_username(),
                             "online": Presence.online(room)})
    if announce and Presence.live(room).count() <= settings.CHAT_PRESENCE_BROADCAST_MAX:
        Group(room.group).send(frame)
    elif joiner is not None:
        joiner.send(frame)

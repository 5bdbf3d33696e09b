"""WebSocket consumers of a room: join, chat, leave (run by the realtime pool)."""
import logging

from channels import Group
from channels.auth import channel_session_user_from_http
from channels.security.websockets import allowed_hosts_only
from django.conf import settings
from django.utils import timezone

from tokens import auth as token_auth

from . import delivery, edits, protocol, ratelimit, reads, sockets
from .exceptions import ClientError
from .models import Message, Presence, Room
from .ordering import ordered, release

logger = logging.getLogger(__name__)


@allowed_hosts_only
@ordered
@channel_session_user_from_http
def ws_connect(message, slug):
    """Accept a logged-in user into an existing room; anything else is refused at the handshake."""
    message.user = token_auth.handshake_user(message)  # an API token, when it carries one, decides
    room = Room.objects.filter(slug=slug).first()
    if not message.user.is_authenticated or room is None or not room.admits(message.user):
        logger.info("Refused socket for room %r (user %s)", slug, message.user)
        message.reply_channel.send({"close": True})
        return
    groups = [room.group, sockets.user_group(message.user.pk)] + token_auth.groups(message)
    sockets.remember(message.channel_session, message.user, room, groups)
    # Accept before joining the groups: a broadcast must never overtake the handshake.
    message.reply_channel.send({"accept": True}, immediately=True)
    for group in groups:
        Group(group).add(message.reply_channel)
    token_auth.check_revoked(message)  # a revocation between the lookup and the join missed this socket
    first = not Presence.live(room).filter(user=message.user).exists()
    Presence.open(room, message.user, message.reply_channel.name)
    _presence(room, "join", message.user, joiner=message.reply_channel, announce=first)


@ordered
@sockets.socket_user
def ws_receive(message, slug):
    """Handle one client frame; a bad one gets an error frame and the socket stays open."""
    room = message.room
    if room is None:  # a frame of a socket refused at the handshake: nothing to answer
        return
    try:
        frame = protocol.parse(message.content.get("text"))
        if frame["type"] == "ping":
            ratelimit.spend(message.channel_session)
            Presence.objects.filter(reply_channel=message.reply_channel.name).update(seen=timezone.now())
            # Joining again is idempotent and refreshes the membership: a socket whose group entries
            # were lost (a Redis restart without persistence) is back in its room, its user's group
            # and its token's (which revocation closes) within one ping.
            for group in sockets.groups(message):
                Group(group).add(message.reply_channel)
            message.reply_channel.send(protocol.encode({"type": "pong"}))
        elif frame["type"] == "read":
            _read(message, room, frame)
        else:
            try:
                _post(message, room, frame)
            except ClientError:
                raise
            except Exception:
                # A bug or an outage, not the client's fault: the frame's ordering is released
                # (ordered's finally) and the client told to resend at once, so the next try lands
                # on another worker (a bad canary) or after the outage, instead of after the
                # client's resend timer. Raised on: the worker logs it and the health counters
                # count it (a rollout's canary judgement).
                message.reply_channel.send(protocol.encode(server_error(frame["client_id"])), immediately=True)
                raise
    except ClientError as error:
        message.reply_channel.send(protocol.encode(error.as_frame()))


def server_error(client_id):
    """The error frame of a message whose consumer failed: the contract's "resend it now"."""
    return ClientError("server_error", "the server failed to handle this message: send it again",
                       client_id, retry_after_ms=0).as_frame()


def _post(message, room, frame):
    ratelimit.admit(message.channel_session, frame["client_id"], stored=lambda client_id: Message.objects.filter(
        user_id=message.user.pk, client_id=client_id).exists())
    stored, created = edits.store(room, message.user, frame)
    # Committed: the broadcast, the ack, the long polls' answer and the moderation job leave at once
    # (channels would hold them until the consumer returns), in one layer round trip.
    # A resend is broadcast again too: the first try may have died between storing and sending.
    # Clients drop ids they have seen, so members get it exactly once.
    delivery.deliver(room, stored, created, ack_to=message.reply_channel.name)
    # The client sends its next message on the ack: let another worker take it now.
    release(message)


def _read(message, room, frame):
    """A read mark: stored (never moved back), then told to every socket of the user, so one tab
    reading clears the others' unread counts."""
    ratelimit.spend(message.channel_session)
    last_read = reads.mark(message.user, room, frame["id"])
    Group(sockets.user_group(message.user.pk)).send(protocol.encode(
        {"type": "read", "room": room.slug, "id": last_read, "unread": reads.count(message.user, room)}))


@sockets.socket_user
def ws_disconnect(message, slug):
    """Leave the room's group; announce the user left when this was their last socket there."""
    room = message.room
    if room is None:
        return
    for group in sockets.groups(message):
        Group(group).discard(message.reply_channel)
    Presence.objects.filter(reply_channel=message.reply_channel.name).delete()
    if not Presence.live(room).filter(user=message.user).exists():
        _presence(room, "leave", message.user, announce=True)


def _presence(room, event, user, joiner=None, announce=True):
    """Tell the room who joined or left, with who is online (at most CHAT_PRESENCE_ONLINE_MAX
    names). A join or leave goes to every member, which is members² frames while a big room
    fills: past CHAT_PRESENCE_BROADCAST_MAX sockets only the joiner hears it (so it still learns
    who is online)."""
    broadcast = announce and not Presence.crowded(room, settings.CHAT_PRESENCE_BROADCAST_MAX)
    if not broadcast and joiner is None:
        return  # a leave in a big room: nobody to tell, nothing to read
    online, more = Presence.online(room, settings.CHAT_PRESENCE_ONLINE_MAX)
    frame = protocol.encode({"type": "presence", "event": event, "user": user.get_username(),
                             "online": online, "online_more": more})
    if broadcast:
        Group(room.group).send(frame)
    else:
        joiner.send(frame)

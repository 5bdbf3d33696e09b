"""What a socket carries from its handshake to its later frames: its user, its room, its groups."""
import functools

from channels.sessions import channel_session
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser

from .models import Room

KEY = "chat_socket"
GROUPS = "chat_groups"


def user_group(user_pk):
    """Every open socket of one user, in any room (notifications, read marks shared by tabs)."""
    return "user-%d" % user_pk


def remember(session, user, room, groups):
    """Called at the handshake, once the user and the room were looked up; `groups`: the groups the
    socket joins (its room's, its user's, its API token's), which each ping joins again and the
    disconnect leaves."""
    session[KEY] = [user.pk, user.get_username(), room.pk, room.slug, user.is_staff]
    session[GROUPS] = list(groups)


def groups(message):
    """The groups a socket joined at its handshake (a socket of an older release: its room's)."""
    return message.channel_session.get(GROUPS) or [message.room.group]


def socket_user(func):
    """Like channels' channel_session_user, without its query per frame: message.user and
    message.room are rebuilt from the channel session (stand-ins with the primary key and name
    of the rows found at the handshake). A socket is thus the user who opened it until it closes,
    as a socket of channels' own decorator was until that user's password hash changed; a frame
    of a socket that never passed the handshake gets AnonymousUser and no room."""
    @channel_session
    @functools.wraps(func)
    def inner(message, *args, **kwargs):
        stored = message.channel_session.get(KEY)
        if stored:
            # A socket opened by an older release has no is_staff: not staff, as before.
            user_pk, username, room_pk, slug, is_staff = (stored + [False])[:5]
            message.user = get_user_model()(pk=user_pk, username=username, is_staff=is_staff)
            message.room = Room(pk=room_pk, slug=slug)
        else:
            message.user, message.room = AnonymousUser(), None
        return func(message, *args, **kwargs)
    return inner

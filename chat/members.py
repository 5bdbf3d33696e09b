"""Members of private rooms: invited and removed by the room's owner (or staff)."""
import logging

from channels import Channel, Group
from django.contrib.auth import get_user_model

from .exceptions import ClientError
from .models import Membership, Presence

logger = logging.getLogger(__name__)


def _user(username):
    user = get_user_model().objects.filter(username=username.strip()).first()
    if user is None:
        raise ClientError("unknown_user", "there is no user %r" % username.strip())
    return user


def invite(room, username):
    """Admit `username` to the private room (again: no change)."""
    Membership.objects.get_or_create(room=room, user=_user(username))


def remove(room, username):
    """Take `username` out of the room and close their open sockets there at once (each socket's
    Presence row names its reply channel)."""
    user = _user(username)
    if user.pk == room.owner_id:
        raise ClientError("owner_stays", "the room's owner cannot be removed")
    if not Membership.objects.filter(room=room, user=user).delete()[0]:
        raise ClientError("not_a_member", "%s is not a member of this room" % user.get_username())
    if user.is_staff:
        return  # staff see every room anyway
    for reply_channel in Presence.objects.filter(room=room, user=user).values_list("reply_channel", flat=True):
        Group(room.group).discard(reply_channel)
        Channel(reply_channel).send({"close": True})
    logger.info("Removed %s from room %s", user.get_username(), room.slug)

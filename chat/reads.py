"""Read marks and unread counts: how far each user has read each room, in any of their tabs."""
from django.db import IntegrityError, transaction
from django.db.models import Count, F, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce

from .models import Message, ReadMark, Room


def mark(user, room, seq):
    """Record that `user` has seen `room` up to `seq` (a mark never moves back: tabs report out of
    order); returns the mark now stored."""
    # Not past the room's last id: a mark ahead of it would hide the messages still to come.
    seq = min(seq, Room.objects.values_list("last_seq", flat=True).get(pk=room.pk))
    if not ReadMark.objects.filter(user=user, room=room, last_read__lt=seq).update(last_read=seq):
        try:
            with transaction.atomic():
                ReadMark.objects.create(user=user, room=room, last_read=seq)
        except IntegrityError:  # it exists (at or past seq), or another tab created it just now
            ReadMark.objects.filter(user=user, room=room, last_read__lt=seq).update(last_read=seq)
    return ReadMark.objects.values_list("last_read", flat=True).get(user=user, room=room)


def _unread(user):
    """Others' messages (not deleted) past the user's mark of their room."""
    last_read = ReadMark.objects.filter(user=user, room=OuterRef("room")).values("last_read")[:1]
    return (Message.objects.said().filter(deleted=False).exclude(user=user)
            .annotate(read_to=Coalesce(Subquery(last_read, output_field=IntegerField()), Value(0)))
            .filter(seq__gt=F("read_to")))


def counts(user, rooms):
    """{room pk: unread messages} for the given rooms (rooms with none are left out): one query."""
    if not user.is_authenticated:
        return {}
    rows = (_unread(user).filter(room__in=rooms).order_by().values("room")
            .annotate(n=Count("pk")).values_list("room", "n"))
    return dict(rows)


def count(user, room):
    """Unread messages of one room."""
    return counts(user, [room]).get(room.pk, 0)

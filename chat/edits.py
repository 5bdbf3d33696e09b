"""Edits and deletes of stored messages: entries of the room's stream, exactly once like messages."""
from django.db import IntegrityError, transaction
from django.utils import timezone

from .exceptions import ClientError
from .models import Message, next_seq


def store(room, user, frame):
    """What a validated change frame (protocol.validate) asks for, done: a message stored, or an
    edit or delete applied; returns (entry, created) either way."""
    if frame["type"] == Message.MESSAGE:
        return Message.post(room, user, frame["client_id"], frame["text"])
    return change(room, user, frame["client_id"], frame["type"], frame["id"], frame.get("text"))


def change(room, user, client_id, kind, target, text=None):
    """Apply an edit (`text`) or a delete of message `target` by `user`; returns (entry, created).
    A resend (the same user and client_id) returns the stored entry and changes nothing; editing a
    message of someone else (staff: anyone's), an unknown one or a deleted one raises ClientError
    and changes nothing, the id it would have taken included."""
    try:
        with transaction.atomic():
            seq = next_seq(room)
            # The entry first: a resend fails here on (user, client_id), before the checks below
            # (which a resend of a delete would fail: its message is deleted, by itself).
            entry = Message.objects.create(room=room, seq=seq, user=user, client_id=client_id, kind=kind,
                                           target=target, text=text or "")
            message = _target(room, target, user)
            now = timezone.now()
            if kind == Message.EDIT:
                Message.objects.filter(pk=message.pk).update(text=text, edited=now, rev=seq)
            else:
                Message.objects.filter(pk=message.pk).update(text="", deleted=True, rev=seq)
                # Its text is gone from every API: the edits' copies too.
                Message.objects.filter(room=room, kind=Message.EDIT, target=target).update(text="")
    except IntegrityError:
        return Message.objects.get(user=user, client_id=client_id), False
    except ClientError as error:
        error.client_id = client_id  # the client's outbox drops the change it names
        raise
    entry.room = room
    entry.target_pk = message.pk  # what moderation scores again after an edit
    return entry, True


def _target(room, target, user):
    """The message an edit or delete applies to, locked until the transaction ends, or ClientError."""
    message = (Message.objects.select_for_update().said()
               .filter(room=room, seq=target).only("pk", "user_id", "deleted").first())
    if message is None:
        raise ClientError("unknown_message", "no message %d in this room" % target)
    if message.user_id != user.pk and not user.is_staff:
        raise ClientError("not_yours", "only its author (or staff) may change message %d" % target)
    if message.deleted:
        raise ClientError("message_deleted", "message %d is deleted" % target)
    return message

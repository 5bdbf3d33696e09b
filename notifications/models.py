"""A notification: one user named in one message, read or not."""
from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Count

# Rows per statement: SQLite allows 999 parameters (an insert of this many takes 4 each).
CHUNK = 200


class Notification(models.Model):
    """`user` was mentioned in `message`; `read` is when they saw it. One per (user, message), so a
    job that runs twice (a worker killed mid-job, a redelivery) notifies once."""
    user = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="notifications", on_delete=models.CASCADE)
    message = models.ForeignKey("chat.Message", related_name="+", on_delete=models.CASCADE)
    room = models.ForeignKey("chat.Room", related_name="+", on_delete=models.CASCADE)
    created = models.DateTimeField(auto_now_add=True)
    read = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-pk",)
        unique_together = (("user", "message"),)

    def get_absolute_url(self):
        """Where the message is: its room, scrolled to it."""
        return "%s#m%d" % (self.room.get_absolute_url(), self.message.seq)

    @classmethod
    def record(cls, wanted):
        """Make sure a notification exists for each (user pk, message pk, room pk) of `wanted`;
        returns {(user pk, message pk): (notification pk, read)} of them all. The ones missing are
        inserted at once (Django 1.11 has no INSERT ... ON CONFLICT): a job run twice at the same
        time by two workers makes one insert fail, and then they go one at a time."""
        wanted = {(user, message): room for user, message, room in wanted}
        found = cls._existing(wanted)
        missing = [cls(user_id=user, message_id=message, room_id=room)
                   for (user, message), room in wanted.items() if (user, message) not in found]
        if not missing:
            return found
        try:
            with transaction.atomic():
                cls.objects.bulk_create(missing, batch_size=CHUNK)
        except IntegrityError:
            for notification in missing:
                try:
                    with transaction.atomic():
                        notification.save()
                except IntegrityError:
                    pass  # the other run's
        return cls._existing(wanted)

    @classmethod
    def _existing(cls, wanted):
        messages = sorted({message for _, message in wanted})
        rows = [row for start in range(0, len(messages), CHUNK)
                for row in cls.objects.filter(message_id__in=messages[start:start + CHUNK]).values_list(
                    "user_id", "message_id", "pk", "read")]
        return {(user, message): (pk, read) for user, message, pk, read in rows if (user, message) in wanted}

    @classmethod
    def unread_counts(cls, user_pks):
        """{user pk: unread notifications} (users with none are left out), in one query per 500."""
        user_pks = sorted(user_pks)
        return {user: count for start in range(0, len(user_pks), 500)
                for user, count in cls.objects.filter(user_id__in=user_pks[start:start + 500], read__isnull=True)
                .order_by().values_list("user_id").annotate(Count("pk"))}

"""Rooms and their messages; the room owns its group names so consumers never build them."""
import datetime
import sqlite3

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.db.models import F
from django.utils import timezone


class Room(models.Model):
    """A chat room; `last_seq` hands out the per-room message ids."""
    slug = models.SlugField(unique=True, max_length=50)
    name = models.CharField(max_length=100)
    created = models.DateTimeField(auto_now_add=True)
    last_seq = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("name",)

    def __str__(self):
        return self.name

    @property
    def group(self):
        """Every WebSocket in the room."""
        return "room-%s" % self.slug

    def poll_group(self, after):
        """Every long-poll request waiting for the message after id `after`."""
        return "poll-%s-%d" % (self.slug, after)

    def get_absolute_url(self):
        return "/rooms/%s/" % self.slug

    def admits(self, user):
        """Whether `user` may read and write the room."""
        return True


class Presence(models.Model):
    """One open socket of a user in a room; `seen` is refreshed by the client's pings."""
    room = models.ForeignKey(Room, related_name="+", on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="+", on_delete=models.CASCADE)
    reply_channel = models.CharField(max_length=200, unique=True)
    seen = models.DateTimeField(auto_now=True, db_index=True)

    @classmethod
    def live(cls, room):
        """Sockets of the room heard from recently; a crashed daphne's sockets age out."""
        cutoff = timezone.now() - datetime.timedelta(seconds=settings.CHAT_PRESENCE_TTL)
        return cls.objects.filter(room=room, seen__gte=cutoff)

    @classmethod
    def online(cls, room):
        """The usernames with a live socket in the room, sorted, each once (the database removes
        the duplicates: a room of 20,000 sockets of a few users reads a few rows, not 20,000)."""
        return list(cls.live(room).order_by("user__username").values_list("user__username", flat=True).distinct())


class MessageQuerySet(models.QuerySet):
    def after(self, seq):
        return self.filter(seq__gt=seq).order_by("seq")


class Message(models.Model):
    """A stored chat message; (user, client_id) makes a resend idempotent."""
    room = models.ForeignKey(Room, related_name="messages", on_delete=models.CASCADE)
    seq = models.PositiveIntegerField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="+", on_delete=models.CASCADE)
    client_id = models.CharField(max_length=64)
    text = models.TextField()
    created = models.DateTimeField(auto_now_add=True)
    # Filled in later by the background pool.
    spam_score = models.FloatField(null=True, blank=True)
    moderated_by = models.CharField(max_length=64, blank=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ("room", "seq")
        unique_together = (("room", "seq"), ("user", "client_id"))

    @classmethod
    def post(cls, room, user, client_id, text):
        """Store a message once; returns (message, created). A resend returns the stored one."""
        try:
            with transaction.atomic():
                # The UPDATE takes the room's write lock: ids are handed out in commit order, no gaps.
                seq = _next_seq(room)
                message = cls.objects.create(
                    room=room, seq=seq, user=user, client_id=client_id, text=text)
        except IntegrityError:
            # A resend (or the same one racing through another worker): (user, client_id) is taken.
            # The whole transaction rolled back, the id it took included, so no gap is left; the
            # stored row is the answer. Trying the insert first saves a lookup on every new message.
            return cls.objects.get(user=user, client_id=client_id), False
        return message, True

    def as_frame(self):
        return {
            "type": "message",
            "id": self.seq,
            "room": self.room.slug,
            "user": self.user.get_username(),
            "text": self.text,
            "ts": self.created.isoformat(),
            "client_id": self.client_id,
        }


def _next_seq(room):
    """Take the room's next message id (inside the storing transaction). Where the database can
    return the updated value (SQLite 3.35+, PostgreSQL), one statement; Django 1.11's ORM knows
    no RETURNING, hence the SQL."""
    if _has_returning():
        with connection.cursor() as cursor:
            cursor.execute("UPDATE %s SET last_seq = last_seq + 1 WHERE id = %%s RETURNING last_seq"
                           % connection.ops.quote_name(Room._meta.db_table), [room.pk])
            return cursor.fetchone()[0]
    Room.objects.filter(pk=room.pk).update(last_seq=F("last_seq") + 1)
    return Room.objects.values_list("last_seq", flat=True).get(pk=room.pk)


def _has_returning():
    return connection.vendor == "postgresql" or (
        connection.vendor == "sqlite" and sqlite3.sqlite_version_info >= (3, 35))

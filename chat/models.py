"""Rooms and their messages; the room owns its group names so consumers never build them."""
import datetime
import sqlite3

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, models, transaction
from django.db.models import F
from django.utils import timezone


class RoomQuerySet(models.QuerySet):
    def visible_to(self, user):
        """The rooms `user` may open: the public ones and the private ones they are a member of
        (staff: all)."""
        if user.is_staff:
            return self
        if not user.is_authenticated:
            return self.filter(private=False)
        return self.filter(models.Q(private=False) | models.Q(memberships__user=user)).distinct()


class Room(models.Model):
    """A chat room; `last_seq` hands out the per-room ids of its stream (messages, edits, deletes)."""
    slug = models.SlugField(unique=True, max_length=50)
    name = models.CharField(max_length=100)
    created = models.DateTimeField(auto_now_add=True)
    last_seq = models.PositiveIntegerField(default=0)
    # A private room admits its members only; its creator invites and removes them.
    private = models.BooleanField(default=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+",
                              on_delete=models.SET_NULL)

    objects = RoomQuerySet.as_manager()

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
        """Whether `user` may read and write the room (one query for a private room)."""
        if not self.private or user.is_staff:
            return True
        return user.is_authenticated and self.memberships.filter(user_id=user.pk).exists()

    def manageable_by(self, user):
        """Whether `user` may invite and remove members."""
        return self.private and (user.is_staff or (user.pk is not None and user.pk == self.owner_id))


class Membership(models.Model):
    """A user admitted to a private room."""
    room = models.ForeignKey(Room, related_name="memberships", on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="+", on_delete=models.CASCADE)
    added = models.DateTimeField(auto_now_add=True)

    class Meta:
        unique_together = (("room", "user"),)
        ordering = ("user__username",)


class ReadMark(models.Model):
    """The last id of a room's stream a user has seen (in any tab)."""
    room = models.ForeignKey(Room, related_name="+", on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="+", on_delete=models.CASCADE)
    last_read = models.PositiveIntegerField(default=0)

    class Meta:
        unique_together = (("user", "room"),)


class Presence(models.Model):
    """One open socket of a user in a room; `seen` is refreshed by the client's pings."""
    room = models.ForeignKey(Room, related_name="+", on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="+", on_delete=models.CASCADE)
    reply_channel = models.CharField(max_length=200, unique=True)
    seen = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        # Answers live(), crowded() and online() of one room from the index alone, in user order:
        # a join in a room of 20,000 sockets read them all (count and DISTINCT: 5.6 ms of a
        # worker's 7 per handshake), and now reads at most CHAT_PRESENCE_ONLINE_MAX + 1 users.
        indexes = [models.Index(fields=["room", "user", "seen"], name="chat_presence_room_user")]

    @classmethod
    def live(cls, room):
        """Sockets of the room heard from recently; a crashed daphne's sockets age out."""
        return cls.objects.filter(room=room, seen__gte=cls._live_since())

    @staticmethod
    def _live_since():
        """The oldest `seen` of a live socket."""
        return timezone.now() - datetime.timedelta(seconds=settings.CHAT_PRESENCE_TTL)

    @classmethod
    def open(cls, room, user, reply_channel):
        """Record a socket at its handshake: one INSERT, as a reply channel is new then
        (update_or_create's locking SELECT and savepoint were 0.3 ms of it); a handshake run twice
        (a redelivered connect) updates the row instead."""
        try:
            with transaction.atomic():
                cls.objects.create(room=room, user=user, reply_channel=reply_channel)
        except IntegrityError:
            cls.objects.filter(reply_channel=reply_channel).update(room=room, user=user, seen=timezone.now())

    @classmethod
    def crowded(cls, room, limit):
        """Whether the room has more than `limit` live sockets (reads at most limit + 1 of them)."""
        return cls.live(room)[limit:limit + 1].exists()

    @classmethod
    def online(cls, room, limit):
        """(usernames, more): at most `limit` users with a live socket in the room, each once,
        sorted, and whether more are online. The first `limit` by account age, so a big room's
        list is the same for every joiner and costs the same at 20 sockets as at 20,000."""
        ids = cls._online_ids(room, limit + 1)
        names = get_user_model().objects.filter(pk__in=ids[:limit]).order_by("username")
        return list(names.values_list("username", flat=True)), len(ids) > limit

    @classmethod
    def _online_ids(cls, room, limit):
        """The lowest `limit` ids of users with a live socket in the room. A DISTINCT reads every
        socket's index entry (1.3-1.5 ms at 12,000 sockets: a fifth of a worker's handshake); this
        loose index scan (the ORM has no recursive query) jumps from one user to the next in the
        index: one lookup per user, the same SQL on SQLite and PostgreSQL."""
        table = connection.ops.quote_name(cls._meta.db_table)
        cutoff = connection.ops.adapt_datetimefield_value(cls._live_since())
        live = "FROM %s WHERE room_id = %%s AND seen >= %%s" % table
        with connection.cursor() as cursor:
            cursor.execute(
                "WITH RECURSIVE online (user_id) AS ("
                " SELECT MIN(user_id) %(live)s"
                " UNION ALL SELECT (SELECT MIN(user_id) %(live)s AND user_id > online.user_id)"
                " FROM online WHERE online.user_id IS NOT NULL)"
                " SELECT user_id FROM online WHERE user_id IS NOT NULL LIMIT %%s" % {"live": live},
                [room.pk, cutoff, room.pk, cutoff, limit])
            return [row[0] for row in cursor.fetchall()]


class MessageQuerySet(models.QuerySet):
    def after(self, seq):
        return self.filter(seq__gt=seq).order_by("seq")

    def said(self):
        """Messages, not the edit and delete entries of the stream."""
        return self.filter(kind=Message.MESSAGE)


class Message(models.Model):
    """One entry of a room's stream, in `seq` order: a message, or an edit or delete of one
    (`target`: its id). (user, client_id) makes a resend of any of them idempotent. A message row
    always holds its current state (its text edited or gone, `rev` the id of the entry that last
    changed it), so a client catching up by id sees each message as it is now."""
    MESSAGE, EDIT, DELETE = "message", "edit", "delete"

    room = models.ForeignKey(Room, related_name="messages", on_delete=models.CASCADE)
    seq = models.PositiveIntegerField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="+", on_delete=models.CASCADE)
    client_id = models.CharField(max_length=64)
    text = models.TextField()
    created = models.DateTimeField(auto_now_add=True)
    # Filled in later by the background pool.
    spam_score = models.FloatField(null=True, blank=True)
    moderated_by = models.CharField(max_length=64, blank=True)
    kind = models.CharField(max_length=8, default=MESSAGE,
                            choices=[(k, k) for k in (MESSAGE, EDIT, DELETE)])
    target = models.PositiveIntegerField(null=True, blank=True)  # an edit or delete: the message's id
    edited = models.DateTimeField(null=True, blank=True)
    deleted = models.BooleanField(default=False)
    rev = models.PositiveIntegerField(default=0)  # a message: the id of the entry that last changed it

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
                seq = next_seq(room)
                message = cls.objects.create(
                    room=room, seq=seq, user=user, client_id=client_id, text=text)
        except IntegrityError:
            # A resend (or the same one racing through another worker): (user, client_id) is taken.
            # The whole transaction rolled back, the id it took included, so no gap is left; the
            # stored row is the answer. Trying the insert first saves a lookup on every new message.
            return cls.objects.get(user=user, client_id=client_id), False
        return message, True

    def as_frame(self):
        """The frame of this entry: a message as it is now, or the edit or delete (`id` is the
        message's, `seq` the entry's own place in the stream)."""
        frame = {
            "type": self.kind,
            "id": self.seq if self.kind == self.MESSAGE else self.target,
            "seq": self.seq,
            "room": self.room.slug,
            "user": self.user.get_username(),
            "ts": self.created.isoformat(),
            "client_id": self.client_id,
        }
        if self.kind == self.MESSAGE:
            frame.update(text=self.text, rev=self.rev, deleted=self.deleted,
                         edited=self.edited.isoformat() if self.edited else None)
        elif self.kind == self.EDIT:
            frame["text"] = self.text
        return frame


def next_seq(room):
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

"""A user's API tokens, kept as hashes, and the per-credential buckets of HTTP sends."""
import datetime
import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

PREFIX = "chat_"
SECRET_BYTES = 32
# The token's first characters shown on the page, so a user tells their tokens apart: "chat_" and
# 6 of its 43 random characters (36 of 256 bits: nothing an attacker can use).
DISPLAY_LENGTH = len(PREFIX) + 6
# last_used is written at most this often: a token used by every request costs no write per request.
TOUCH_INTERVAL = datetime.timedelta(seconds=60)


def digest(token):
    """The stored form of a token: its SHA-256 in hex. The token has 256 random bits, so a plain hash
    is enough (a slow password hash protects guessable secrets); a lookup by hash compares nothing
    secret in Python, so it leaks nothing by its timing."""
    return hashlib.sha256(token.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def live(self, now=None):
        """Tokens neither revoked nor expired."""
        now = now or timezone.now()
        return self.filter(revoked__isnull=True).exclude(expires__lte=now)


class ApiToken(models.Model):
    """A personal token: `chat_` + 32 random bytes (URL-safe base64), shown once; only its hash is kept."""
    user = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="api_tokens", on_delete=models.CASCADE)
    name = models.CharField(max_length=100)
    hash = models.CharField(max_length=64, unique=True)  # unique: an index, looked up on every use
    prefix = models.CharField(max_length=DISPLAY_LENGTH)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)
    expires = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ("-created", "-pk")

    def __str__(self):
        return "%s (%s...)" % (self.name, self.prefix)

    @classmethod
    def issue(cls, user, name, expires_in_days=None):
        """Create a token; returns (ApiToken, the token itself), which is never stored nor shown again."""
        token = PREFIX + secrets.token_urlsafe(SECRET_BYTES)
        expires = timezone.now() + datetime.timedelta(days=expires_in_days) if expires_in_days else None
        row = cls.objects.create(user=user, name=name, hash=digest(token), prefix=token[:DISPLAY_LENGTH],
                                 expires=expires)
        return row, token

    @property
    def group(self):
        """Every WebSocket the token opened: revoking it sends them a close."""
        return "token-%d" % self.pk

    def expired(self, now=None):
        return self.expires is not None and self.expires <= (now or timezone.now())

    def touch(self, now=None):
        """Record a use, writing at most once a TOUCH_INTERVAL (one UPDATE, and only when stale)."""
        now = now or timezone.now()
        if self.last_used is None or now - self.last_used >= TOUCH_INTERVAL:
            ApiToken.objects.filter(pk=self.pk).update(last_used=now)
            self.last_used = now


class SendBucket(models.Model):
    """A token bucket of HTTP sends for one credential ("session:<key>" or "token:<pk>"): `tokens`
    left at `at` (seconds since the epoch). No row is a full bucket."""
    credential = models.CharField(max_length=80, unique=True)
    tokens = models.FloatField()
    at = models.FloatField(db_index=True)  # indexed: full buckets are deleted by age

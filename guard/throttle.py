"""Login throttling: after CHAT_LOGIN_FAILURES failed logins in CHAT_LOGIN_WINDOW seconds for one
username, or from one client address, further attempts for it are refused until the oldest failure
ages out of the window; a successful login clears its username's failures (not its address's: one
valid account must not reset the count of an address guessing others' passwords)."""
import hashlib
import logging
import math

from django.conf import settings
from django.utils import timezone

from .models import LoginFailure

logger = logging.getLogger(__name__)


def key(kind, value):
    """The LoginFailure key of a username or an address."""
    return hashlib.sha256(("%s:%s" % (kind, value)).encode("utf-8", "surrogatepass")).hexdigest()


def keys(username, address):
    return [key("username", username), key("address", address)]


def retry_after(username, address):
    """Seconds until a login for `username` from `address` may be tried again; 0: it may now."""
    limit, window = settings.CHAT_LOGIN_FAILURES, settings.CHAT_LOGIN_WINDOW
    now = timezone.now()
    wait = 0
    for counted in keys(username, address):
        times = list(LoginFailure.objects.filter(key=counted, at__gt=now - timezone.timedelta(seconds=window))
                     .order_by("at").values_list("at", flat=True))
        if len(times) >= limit:
            # Allowed again once this many have aged out that fewer than `limit` remain.
            frees = times[len(times) - limit] + timezone.timedelta(seconds=window)
            wait = max(wait, math.ceil((frees - now).total_seconds()), 1)
    return wait


def record_failure(username, address):
    """Count a failed login against its username and its address; forget failures past the window."""
    now = timezone.now()
    LoginFailure.objects.filter(at__lte=now - timezone.timedelta(seconds=settings.CHAT_LOGIN_WINDOW)).delete()
    LoginFailure.objects.bulk_create([LoginFailure(key=counted, at=now) for counted in keys(username, address)])
    logger.info("Failed login from %s", address)


def clear(username):
    """A successful login: the username's failures no longer count."""
    LoginFailure.objects.filter(key=key("username", username)).delete()

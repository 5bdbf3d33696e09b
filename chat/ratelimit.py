"""A token bucket per socket, kept in its channel session."""
import time

from django.conf import settings

from .exceptions import ClientError

KEY = "chat_rate"


def spend(session, now=None):
    """Take one token for a frame, or raise ClientError("rate_limited")."""
    now = time.time() if now is None else now
    burst, rate = settings.CHAT_RATE_BURST, settings.CHAT_RATE_PER_SECOND
    tokens, at = session.get(KEY, (burst, now))
    # max(): workers on other machines may have clocks a little behind the one that wrote this
    tokens = min(burst, tokens + max(0.0, now - at) * rate)
    if tokens < 1:
        session[KEY] = (tokens, now)
        raise ClientError("rate_limited", "too many frames: at most %d at once, then %g per second"
                          % (burst, rate))
    session[KEY] = (tokens - 1, now)

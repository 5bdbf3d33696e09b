"""A token bucket per socket, kept in its channel session, and the send order it keeps across refusals."""
import math
import time

from django.conf import settings

from .exceptions import ClientError

KEY = "chat_rate"
# The client_id of the message refused first: the socket's later messages wait until it comes again.
REFUSED = "chat_refused"


def spend(session, client_id=None, now=None):
    """Take one token for a frame, or raise ClientError("rate_limited") with the wait for the next."""
    now = time.time() if now is None else now
    tokens = _tokens(session, now)
    if tokens < 1:
        session[KEY] = (tokens, now)
        raise limited(client_id, tokens)
    session[KEY] = (tokens - 1, now)


def admit(session, client_id, now=None, stored=None):
    """Let a message through in the order its socket sent it, or raise ClientError("rate_limited").

    A message refused for want of a token is remembered: every other message of the socket is
    refused too (spending nothing, naming the one waited for) until that one is sent again. Every
    older message of the socket was handled before it, so a client that, after a refusal, waits
    retry_after_ms and resends the waited-for message, then its other unacked ones in the order it
    first sent them, gets them stored in that order, each once (a resend of a stored one is acked
    again). A refusal naming the one waited for costs no query: refusals are what a flood is made of."""
    now = time.time() if now is None else now
    refused = session.get(REFUSED)
    if refused is not None and client_id != refused:
        raise limited(client_id, _tokens(session, now), waiting_for=refused)
    try:
        spend(session, client_id, now)
    except ClientError:
        # stored(client_id): whether the message is stored already (a resend that crossed its ack).
        # Its client dropped it on the ack and never sends it again: waiting for it would refuse
        # the socket's every later message for good. One query per refusal that starts a wait.
        if stored is None or not stored(client_id):
            session[REFUSED] = client_id
        raise
    session.pop(REFUSED, None)


def _tokens(session, now):
    tokens, at = session.get(KEY, (settings.CHAT_RATE_BURST, now))
    return refill(tokens, at, now)


def refill(tokens, at, now):
    """A bucket's tokens at `now`, that held `tokens` at `at`."""
    # max(): workers on other machines may have clocks a little behind the one that wrote this
    return min(settings.CHAT_RATE_BURST, tokens + max(0.0, now - at) * settings.CHAT_RATE_PER_SECOND)


def limited(client_id, tokens, what="frames", **fields):
    """The rate_limited error of a bucket holding `tokens`: retry_after_ms is when it has one."""
    burst, rate = settings.CHAT_RATE_BURST, settings.CHAT_RATE_PER_SECOND
    return ClientError(
        "rate_limited", "too many %s: at most %d at once, then %g per second" % (what, burst, rate), client_id,
        # round(): 0.6 token at 4 per second is 150 ms, not the 151 of float noise
        retry_after_ms=int(math.ceil(round(max(0.0, 1 - tokens) / rate * 1000, 3))), **fields)

"""A token bucket of HTTP sends per credential (a session or an API token), kept in the database."""
import math
import time

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.http import JsonResponse

from chat import ratelimit
from chat.exceptions import ClientError
from chat.protocol import MAX_CLIENT_ID

from .models import SendBucket

# One statement takes a token if the refilled bucket has one: concurrent sends of one credential
# (gunicorn's workers, the asgi shape's realtime pool) never both take the last token. The refill is
# the socket bucket's (chat.ratelimit): up to the burst, at the rate, never for a clock that went back.
TAKE = """UPDATE {table} SET {tokens} = {least}(%s, {tokens} + {greatest}(0, %s - {at}) * %s) - 1,
    {at} = {greatest}({at}, %s)
WHERE {credential} = %s AND {least}(%s, {tokens} + {greatest}(0, %s - {at}) * %s) >= 1"""


def credential(request):
    """The bucket's name: the request's API token, else its session."""
    token = getattr(request, "api_token", None)
    if token is not None:
        return "token:%d" % token.pk
    if request.session.session_key:
        return "session:%s" % request.session.session_key
    return "user:%d" % request.user.pk


def spend(key, client_id=None, now=None):
    """Take one send from the bucket `key`, or raise ClientError("rate_limited") with the wait."""
    now = time.time() if now is None else now
    burst, rate = settings.CHAT_RATE_BURST, settings.CHAT_RATE_PER_SECOND
    if _take(key, now, burst, rate):
        return
    try:
        with transaction.atomic():
            SendBucket.objects.create(credential=key, tokens=burst - 1, at=now)
    except IntegrityError:
        # The row exists: this bucket is empty, or another request created it meanwhile.
        if _take(key, now, burst, rate):
            return
    else:
        # A new bucket: forget the ones full again by now (no row is a full bucket), so the table
        # holds only the credentials that sent lately.
        SendBucket.objects.filter(at__lt=now - burst / rate).delete()
        return
    tokens, at = SendBucket.objects.values_list("tokens", "at").get(credential=key)
    raise ratelimit.limited(client_id, ratelimit.refill(tokens, at, now), what="sends")


def _take(key, now, burst, rate):
    quote = connection.ops.quote_name
    # Two-argument MIN and MAX are SQLite's LEAST and GREATEST.
    least, greatest = ("MIN", "MAX") if connection.vendor == "sqlite" else ("LEAST", "GREATEST")
    sql = TAKE.format(table=quote(SendBucket._meta.db_table), tokens=quote("tokens"), at=quote("at"),
                      credential=quote("credential"), least=least, greatest=greatest)
    with connection.cursor() as cursor:
        cursor.execute(sql, [burst, now, rate, now, key, burst, now, rate])
        return cursor.rowcount == 1


def refusal(request, client_id=None):
    """None when the request's credential may send now; else the 429 answer (the rate_limited error
    with retry_after_ms, as a socket's frame has it, and Retry-After in whole seconds). The send's
    client_id is named when it is a valid one."""
    if not isinstance(client_id, str) or not 0 < len(client_id) <= MAX_CLIENT_ID:
        client_id = None
    try:
        spend(credential(request), client_id)
    except ClientError as error:
        response = JsonResponse(error.as_frame(), status=429)
        response["Retry-After"] = str(int(math.ceil(error.fields["retry_after_ms"] / 1000.0)))
        return response
    return None

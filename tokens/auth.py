"""Authentication by API token: the HTTP endpoints' decorator and the WebSocket handshake's user."""
import functools
import logging
import re
from urllib.parse import parse_qs

from channels import Group
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from chat.exceptions import ClientError

from .models import PREFIX, ApiToken, digest

logger = logging.getLogger(__name__)

# What ApiToken.issue makes: the prefix and 32 bytes in URL-safe base64 without padding.
FORMAT = re.compile(r"\A%s[A-Za-z0-9_-]{43}\Z" % PREFIX)
QUERY_PARAMETER = "token"
NEW_ONE = "create a new one on the tokens page (/tokens/)"


def bearer(value):
    """The credentials of an Authorization header of the Bearer scheme (any case, RFC 7235), or None
    for another scheme (a proxy's Basic login is not ours to judge)."""
    scheme, _, credentials = (value or "").strip().partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def lookup(token, now=None):
    """The live ApiToken a token string names; raises ClientError with the code of what is wrong."""
    if not FORMAT.match(token):
        raise ClientError("token_malformed", "a token is %s followed by 43 characters: copy it whole, or %s"
                          % (PREFIX, NEW_ONE))
    # By its hash through the unique index: nothing secret is compared in Python (no timing oracle).
    row = ApiToken.objects.select_related("user").filter(hash=digest(token)).first()
    if row is None:
        raise ClientError("token_unknown", "no such token: %s" % NEW_ONE)
    if row.revoked is not None or not row.user.is_active:
        raise ClientError("token_revoked", "this token was revoked (or its account disabled): %s" % NEW_ONE)
    now = now or timezone.now()
    if row.expired(now):
        raise ClientError("token_expired", "this token expired at %s: %s" % (row.expires.isoformat(), NEW_ONE))
    row.touch(now)
    return row


def token_from_request(request):
    """The ApiToken of an HTTP request's `Authorization: Bearer` header, or None when it has none."""
    token = bearer(request.META.get("HTTP_AUTHORIZATION"))
    if token is None:
        if QUERY_PARAMETER in request.GET:
            # Only a WebSocket handshake takes the token in its URL (a browser's WebSocket cannot
            # set headers); URLs end up in logs and browser histories.
            raise ClientError("token_malformed", "send the token as 'Authorization: Bearer <token>': "
                              "?token= is for WebSocket handshakes only")
        return None
    return lookup(token)


def token_from_handshake(message):
    """The ApiToken of a websocket.connect message: its Authorization header's, else its ?token=
    query parameter's; None when it carries neither."""
    for name, value in message.content.get("headers") or ():
        if name == b"authorization":
            token = bearer(value.decode("latin-1"))
            if token is not None:
                return lookup(token)
    query = message.content.get("query_string") or b""
    if isinstance(query, bytes):
        query = query.decode("latin-1")
    values = parse_qs(query, keep_blank_values=True).get(QUERY_PARAMETER)
    if values is None:
        return None
    if len(values) != 1:
        raise ClientError("token_malformed", "give one token (?token=<token>)")
    return lookup(values[0])


def _unauthorized(error):
    response = JsonResponse(error.as_frame(), status=401)
    response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


def session_or_token(view):
    """login_required, or a valid Bearer token: request.user is then the token's user and
    request.api_token the token; a bad token is answered 401 with its code."""
    with_session = csrf_protect(login_required(view))

    # Exempt from the CSRF middleware, which runs before any decorator could look at the token;
    # session requests are checked here instead (csrf_protect: the middleware's own checks).
    # A token request needs none: CSRF forges a request the browser authenticates by itself with
    # its cookies; a token is never sent by a browser on its own, and a foreign page cannot add an
    # Authorization header to a request here (that needs a CORS preflight this site never grants).
    @csrf_exempt
    @functools.wraps(view)
    def inner(request, *args, **kwargs):
        try:
            token = token_from_request(request)
        except ClientError as error:
            return _unauthorized(error)
        if token is None:
            return with_session(request, *args, **kwargs)
        request.user, request.api_token = token.user, token
        return view(request, *args, **kwargs)
    return inner


def handshake_user(message):
    """The user of a WebSocket handshake: its token's when it carries one, AnonymousUser when that
    token is bad (the handshake is then refused; the code is logged, never the token), else the
    session's (message.user)."""
    try:
        token = token_from_handshake(message)
    except ClientError as error:
        logger.info("Refused the token of socket %s: %s", message.reply_channel.name, error.code)
        message.api_token = None
        return AnonymousUser()
    message.api_token = token
    return message.user if token is None else token.user


def groups(message):
    """The groups a socket opened with a token joins: the token's, which revocation closes."""
    token = getattr(message, "api_token", None)
    return [] if token is None else [token.group]


def check_revoked(message):
    """After the socket joined its groups: a revocation that ran between the handshake's lookup and
    the join missed it, so the token is read once more, and the socket closed if it was revoked
    meanwhile."""
    token = getattr(message, "api_token", None)
    if token is not None and ApiToken.objects.filter(pk=token.pk, revoked__isnull=False).exists():
        message.reply_channel.send({"close": True}, immediately=True)


def revoke(token, now=None):
    """Revoke a token and close every socket it opened; False when it was revoked already."""
    if not ApiToken.objects.filter(pk=token.pk, revoked__isnull=True).update(revoked=now or timezone.now()):
        return False
    # Committed (autocommit): a handshake that joins after this send reads the revocation (join()).
    Group(token.group).send({"close": True}, immediately=True)
    logger.info("Token %d of user %s revoked", token.pk, token.user_id)
    return True

"""Personal API tokens through the real deployment: created on the page, used by a client without
cookies (WebSocket by ?token= and by header, HTTP history and sends), refused with their codes,
revoked on the page (the open sockets closed within a second), and kept out of nginx's log."""
import json
import re
import time
import uuid

import pytest
import websocket

from harness.client import Browser

# One layout: the tokens are Django's business, the same on every layer and shape.
TOKEN_LAYOUTS = ("redis",)
TOKEN = re.compile(r'<code id="token-value">(chat_[A-Za-z0-9_-]+)</code>')
ROW = re.compile(r'<tr data-token-id="(\d+)">')
MESSAGES = "/rooms/lobby/messages"


@pytest.fixture
def owner(site):
    """A signed-up user on a token layout."""
    if site.layout not in TOKEN_LAYOUTS:
        pytest.skip("API tokens are tested on one layout")
    browser = Browser(site.url)
    browser.username = "tok%s" % uuid.uuid4().hex[:10]
    return browser.signup(browser.username)


def create_token(browser, name="bot"):
    """(token, pk) of a token created on the page, read from it as a user copies it."""
    page = browser.post_form("/tokens/", {"name": name})
    assert page.status == 200 and "Copy it now, it is not shown again." in page.text, page.text[:500]
    return TOKEN.search(page.text).group(1), int(ROW.search(page.text).group(1))


def bearer(token):
    return {"Authorization": "Bearer " + token}


def socket(site, token=None, query=None, **options):
    """A WebSocket to the lobby with no cookie: the token in the query or in a header."""
    url = "ws" + site.url[len("http"):] + "/ws/rooms/lobby/" + ("?token=" + query if query else "")
    return websocket.create_connection(url, timeout=10, origin=site.url,
                                       header=["Authorization: Bearer " + token] if token else [], **options)


def next_frame(ws, kind):
    while True:
        frame = json.loads(ws.recv())
        if frame["type"] == kind:
            return frame


def test_a_token_serves_a_client_without_cookies(site, owner):
    """A token from the page opens sockets (?token= and Authorization) and reads and sends over HTTP
    as its user; nginx's access log keeps the handshake's line without the token."""
    token, _ = create_token(owner)
    client = Browser(site.url)  # no cookies, no CSRF token
    for ws in (socket(site, query=token), socket(site, token=token)):
        assert next_frame(ws, "presence")["user"] == owner.username
        client_id = "ws-%s" % uuid.uuid4().hex[:8]
        ws.send(json.dumps({"type": "message", "text": "by token", "client_id": client_id}))
        assert next_frame(ws, "ack")["client_id"] == client_id
        ws.close()
    sent = client.request(MESSAGES, data={"text": "over http", "client_id": "http-" + token[5:15]},
                          headers=bearer(token))
    assert sent.status == 200 and sent.json()["type"] == "ack", sent.text
    history = client.get(MESSAGES + "?after=%d" % (sent.json()["id"] - 1), headers=bearer(token))
    assert [(m["text"], m["user"]) for m in history.json()] == [("over http", owner.username)]
    with open(site.paths.log + "/nginx-access.log") as log:
        text = log.read()
    assert token not in text
    assert "/ws/rooms/lobby/?[query redacted]" in text


def test_bad_tokens_are_refused_with_their_codes(site, owner):
    """Malformed, unknown, expired and revoked tokens: 401 with the code over HTTP, a refused
    handshake (403) on a socket; nothing is stored."""
    expired, expired_pk = create_token(owner, "expired")
    site.shell("from django.utils import timezone; from tokens.models import ApiToken; "
               "ApiToken.objects.filter(pk=%d).update(expires=timezone.now())" % expired_pk)
    revoked, revoked_pk = create_token(owner, "revoked")
    assert owner.post_form("/tokens/%d/revoke/" % revoked_pk, {}, form_page="/tokens/").status == 200
    client = Browser(site.url)
    for token, code in (("chat_short", "token_malformed"), ("chat_" + "A" * 43, "token_unknown"),
                        (expired, "token_expired"), (revoked, "token_revoked")):
        for resp in (client.get(MESSAGES, headers=bearer(token)),
                     client.request(MESSAGES, data={"text": "no", "client_id": code}, headers=bearer(token))):
            assert (resp.status, resp.json()["code"]) == (401, code), resp.text
        for options in ({"query": token}, {"token": token}):
            with pytest.raises(websocket.WebSocketBadStatusException) as refused:
                socket(site, **options)
            assert refused.value.status_code == 403


def test_revoking_closes_open_sockets_at_once(site, owner):
    """Revoked on the page, a token's open sockets are closed within a second, and the token is
    refused from then on."""
    token, pk = create_token(owner)
    sockets = [socket(site, query=token), socket(site, token=token)]
    for ws in sockets:
        next_frame(ws, "presence")
    started = time.monotonic()
    assert owner.post_form("/tokens/%d/revoke/" % pk, {}, form_page="/tokens/").status == 200
    for ws in sockets:
        with pytest.raises(websocket.WebSocketConnectionClosedException):
            while True:  # frames already on their way (a presence), then the close
                if ws.recv() == "":  # the server's close frame
                    raise websocket.WebSocketConnectionClosedException("closed")
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, "closed %.2f s after the revocation" % elapsed
    resp = Browser(site.url).get(MESSAGES, headers=bearer(token))
    assert (resp.status, resp.json()["code"]) == (401, "token_revoked")
    with pytest.raises(websocket.WebSocketBadStatusException):
        socket(site, query=token)


def test_http_sends_are_rate_limited_per_token(site, owner):
    """Sends over HTTP past the burst are answered 429 rate_limited with retry_after_ms; every
    other one is acked."""
    token, _ = create_token(owner)
    client = Browser(site.url)
    answers = [client.request(MESSAGES, data={"text": "n%d" % n, "client_id": "rl-%s-%d" % (token[5:13], n)},
                              headers=bearer(token)) for n in range(26)]
    refused = [a for a in answers if a.status == 429]
    assert refused and all(a.status in (200, 429) for a in answers), [a.status for a in answers]
    body = refused[0].json()
    assert body["code"] == "rate_limited" and body["retry_after_ms"] > 0 and body["client_id"]
    assert int(refused[0].headers["Retry-After"]) >= 1

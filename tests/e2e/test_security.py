"""Security of the deployment, each bad input named: origins, sessions, CSRF, hosts, DEBUG, Redis
exposure and encryption, nginx headers and size limits, secrets in the repository."""
import json
import os
import re
import socket
import subprocess
import uuid

import pytest
import redis
import websocket

from harness.client import Browser
from harness.sites import REPO, Site

# ---- against the shared deployments ----------------------------------------------------------


@pytest.mark.parametrize("path", ["/ws/rooms/lobby/", "/ws/echo/"])
@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1.evil.example"])
def test_every_socket_checks_origin(site, path, origin):
    """Every WebSocket path refuses a foreign Origin at the handshake (403 from channels'
    allowed_hosts_only; autobahn refuses the literal "null" origin itself with 400)."""
    browser = Browser(site.url).signup("o%s" % uuid.uuid4().hex[:10])
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        browser.websocket(path, origin=origin)
    assert refused.value.status_code == (400 if origin == "null" else 403)


def test_forms_need_csrf(site):
    """A POST without the CSRF token is refused on every form: room creation, sending over HTTP,
    signup and login."""
    browser = Browser(site.url).signup("x%s" % uuid.uuid4().hex[:10])
    for path, fields in (("/rooms/", {"name": "csrf test"}),
                         ("/rooms/lobby/messages", {"text": "hi", "client_id": "csrf"}),
                         ("/accounts/signup/", {"username": "mallory", "password1": "a-b-c-d-e-f-1",
                                                "password2": "a-b-c-d-e-f-1"}),
                         ("/accounts/login/", {"username": "mallory", "password": "x"})):
        assert browser.request(path, data=fields).status == 403, path


def test_unknown_host_is_refused(site):
    """A Host header outside ALLOWED_HOSTS gets 400 (no host header injection into links)."""
    with socket.create_connection(("127.0.0.1", site.port)) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
        assert conn.recv(100).split(b"\r\n")[0].endswith(b"400 Bad Request")


def test_debug_is_off(site):
    """Errors show no debug page: DEBUG is off in the deployment."""
    resp = Browser(site.url).get("/no/such/page")
    assert resp.status == 404
    assert "DEBUG = True" not in resp.text and "URLconf" not in resp.text


def test_no_version_headers(site):
    """Responses name no server software version (nginx, gunicorn, daphne, twisted, autobahn)."""
    browser = Browser(site.url).signup("v%s" % uuid.uuid4().hex[:10])
    for path in ("/", "/healthz", "/static/chat/chat.css", "/poll/rooms/lobby/?after=0", "/nope"):
        resp = browser.get(path)
        headers = " ".join("%s: %s" % item for item in resp.headers.items()).lower()
        assert resp.headers.get("Server") == "nginx", path
        for leak in ("gunicorn", "daphne", "twisted", "autobahn", "python", "nginx/"):
            assert leak not in headers, (path, headers)


def test_request_size_limits(site):
    """nginx refuses a body over 1 MiB (413) and a header over 8 KiB."""
    browser = Browser(site.url)
    assert browser.request("/accounts/login/", data={"username": "x" * (2 * 1024 * 1024)}).status == 413
    assert browser.get("/", headers={"X-Big": "y" * 16384}).status in (400, 431)


def test_frame_size_limit(site, user):
    """A WebSocket message over 64 KiB (70 KiB, 1 MiB) is refused by daphne itself before the app
    sees it: close code 1009 ("message too big") and a closing handshake, not a dropped connection;
    one over the app's 16 KiB limit gets a frame_too_large error and the socket stays."""
    ws = user.websocket("/ws/rooms/lobby/")
    ws.send(json.dumps({"type": "message", "text": "x" * 20000, "client_id": "big"}))
    while True:
        frame = json.loads(ws.recv())
        if frame["type"] == "error":
            break
    assert frame["code"] == "frame_too_large"
    ws.send(json.dumps({"type": "ping"}))
    while json.loads(ws.recv())["type"] != "pong":
        pass
    ws.close()
    for size in (70 * 1024, 1024 * 1024):
        ws = user.websocket("/ws/rooms/lobby/")
        ws.send("x" * size)
        while True:
            opcode, data = ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break
        assert int.from_bytes(data[:2], "big") == 1009, (size, data)
        ws.close()  # our half of the closing handshake; the server ends the TCP connection


def test_supervised_redis_is_loopback_only(site):
    """The redis-server supervisord runs listens on 127.0.0.1 only, in protected mode."""
    if not site.own_redis:
        pytest.skip("supervisord runs Redis only where the deployment has its own")
    url = site.redis_url()
    client = redis.StrictRedis.from_url(url)
    assert client.config_get("bind")["bind"] == "127.0.0.1"
    assert client.config_get("protected-mode")["protected-mode"] == "yes"


# ---- dedicated deployments -------------------------------------------------------------------

@pytest.fixture
def secured_site():
    """Redis with a password and encrypted layer messages."""
    deployment = Site(CHAT_LAYER="redis", CHAT_REDIS_PASSWORD="s3cret-%s" % uuid.uuid4().hex,
                      CHAT_LAYER_ENCRYPTION_KEYS="key-one-%s" % uuid.uuid4().hex)
    deployment.layout = "redis"
    try:
        yield deployment.start()
    finally:
        deployment.close()


def redis_values(client):
    """Every string value and list item in Redis (the layer keeps messages in lists)."""
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == b"string":
            yield client.get(key) or b""
        elif kind == b"list":
            yield from client.lrange(key, 0, -1)


def queued_text_visible(site, marker):
    """Stop the realtime pool, send a frame carrying `marker`, and look for it in every Redis value."""
    supervisor = site.supervisor()
    supervisor.stopProcessGroup("realtime")
    try:
        url = site.redis_url()
        client = redis.StrictRedis.from_url(url)
        layer_send = ("from channels import Channel; Channel('websocket.receive').send("
                      "{'reply_channel': 'x!y', 'path': '/ws/rooms/lobby/', 'order': 1, 'text': %r})" % marker)
        site.shell(layer_send)
        return any(marker.encode() in value for value in redis_values(client))
    finally:
        supervisor.startProcessGroup("realtime")


def test_redis_password_and_encryption(secured_site):
    """With CHAT_REDIS_PASSWORD Redis refuses clients without it; with CHAT_LAYER_ENCRYPTION_KEYS no
    message text is readable in Redis while it waits there; and the chat still works."""
    url = secured_site.redis_url()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(redis.exceptions.ResponseError, match="NOAUTH|Authentication"):
        redis.StrictRedis(host="127.0.0.1", port=port).get("anything")
    marker = "plaintext-%s" % uuid.uuid4().hex
    assert not queued_text_visible(secured_site, marker)
    browser = Browser(secured_site.url).signup("s%s" % uuid.uuid4().hex[:10])
    ws = browser.websocket("/ws/rooms/lobby/")
    ws.send(json.dumps({"type": "message", "text": "encrypted hello", "client_id": "enc"}))
    while json.loads(ws.recv())["type"] != "ack":
        pass
    ws.close()


def test_without_encryption_the_text_is_readable(site):
    """The control for the test above: without encryption the same probe finds the text in Redis."""
    if not site.own_redis:
        pytest.skip("needs the supervised Redis")
    assert queued_text_visible(site, "plaintext-%s" % uuid.uuid4().hex)


# ---- the repository --------------------------------------------------------------------------

# A secret-like name assigned a long literal: SECRET_KEY = "f8#k...", password: 'hunter2hunter2...'
# (DEBUG's own key announces itself as insecure-...).
HARDCODED = re.compile(
    r"""(?i)(secret_key|password|passwd|token|api_key)["']?\s*[:=]\s*["'](?!insecure-)[^"'\s$]{16,}["']""")


def test_no_secrets_in_the_repository():
    """No committed .env, key file or hard-coded secret; var/ and .env are ignored."""
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, stdout=subprocess.PIPE,
                             universal_newlines=True, check=True).stdout.split()
    assert ".env" not in tracked and not any(p.startswith("var/") for p in tracked)
    ignored = subprocess.run(["git", "check-ignore", ".env", "var/secret_key"], cwd=REPO,
                             stdout=subprocess.PIPE, universal_newlines=True).stdout.split()
    assert ignored == [".env", "var/secret_key"]
    for path in tracked:
        # tests/ and harness/ sign up throwaway users in throwaway databases; their passwords are no secrets.
        if path.endswith((".png", ".jpg")) or path.startswith(("tests/", "harness/")) or \
                not os.path.isfile(os.path.join(REPO, path)):
            continue
        with open(os.path.join(REPO, path), errors="replace") as source:
            text = source.read()
        assert "BEGIN PRIVATE KEY" not in text and "BEGIN RSA PRIVATE KEY" not in text, path
        assert not HARDCODED.search(text), (path, HARDCODED.search(text).group(0))

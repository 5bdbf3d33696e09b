"""The advisories of docs/security.md that apply, attacked on the real deployment and closed: huge
signup passwords, log lines forged through the path, long Content-Type headers, backslashed cookies,
line breaks in a WebSocket handshake's headers; and nginx's own errors with the security headers.
Each test runs on one or two layouts (the others skip)."""
import glob
import json
import os
import time
import uuid

from harness.client import Browser
from my_project.headers import HEADERS

from .test_hardening import SHAPES, exchange, get, only

# Every byte autobahn's splitlines() ends a header line at that Twisted does not (CVE-2026-44546).
LINE_BREAKS = (b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\x85")


def post(path, body, content_type=b"application/x-www-form-urlencoded", headers=b""):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " + content_type + b"\r\n" + headers +
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)) + body


def test_signup_huge_password_is_cheap(site):
    """A signup with two 480,000-character passwords and a username of 75 parts (CVE-2021-45115:
    2.7 s of a gunicorn worker before the cap) gets the form back with a length error in well under
    a second; a normal signup still works."""
    only(site, ("ipc",))
    browser = Browser(site.url)
    username = ".".join("abcdefghijklmnopqrstuvwxyz"[i % 26] for i in range(75))
    started = time.monotonic()
    resp = browser.post_form("/accounts/signup/", {"username": username, "password1": "x" * 480000,
                                                   "password2": "x" * 480000})
    elapsed = time.monotonic() - started
    assert resp.status == 400 and "at most 4096 characters" in resp.text, resp.text[:500]
    assert elapsed < 1, elapsed
    Browser(site.url).signup("hp%s" % uuid.uuid4().hex[:8])


def logs_holding(site, text, timeout=5):
    """Every line of the deployment's logs, once one of them holds text (supervisord writes the
    programs' output as it comes)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = []
        for path in glob.glob(os.path.join(site.paths.log, "*.log")):
            with open(path, errors="replace") as log:
                lines.extend(log.read().splitlines())
        if any(text in line for line in lines) or time.monotonic() > deadline:
            return lines


def test_log_lines_cannot_be_forged(site):
    """A path with an encoded newline (CVE-2025-48432), through nginx to a 404 (Django's `Not Found`)
    and to the multipart refusal (guard's log line), writes no log line of its own: the newline is
    logged as \\n (gunicorn's log on the split shape, a worker's on the asgi shape)."""
    only(site, SHAPES)
    marker = uuid.uuid4().hex[:8]
    (status, _, _), = exchange(site, get(b"/nope%0AFORGED%20LINE%20" + marker.encode()))[0]
    assert status == 404
    part = b'--b\r\nContent-Disposition: form-data; name="f"\r\n\r\nx\r\n--b--\r\n'
    (status, _, _), = exchange(site, post(b"/nope%0D%0AFORGED%20MULTIPART%0B" + marker.encode(), part,
                                          b"multipart/form-data; boundary=b"))[0]
    assert status == 415
    lines = logs_holding(site, "FORGED MULTIPART\\x0b" + marker)
    assert any("Not Found: /nope\\nFORGED LINE " + marker in line for line in lines)
    assert any("/nope\\r\\nFORGED MULTIPART\\x0b" + marker in line for line in lines)
    assert not [line for line in lines if line.startswith("FORGED")]


def test_long_content_type_is_refused(site):
    """nginx answers 400 to a Content-Type over 256 bytes (CVE-2026-84429's 8 KiB of quoted `;`),
    before Django's cgi.parse_header sees it, and forwards only the Content-Type line it checked; one
    of 256 bytes and a normal form POST pass."""
    only(site, ("ipc",))
    attack = b'text/plain; a="' + b'";' * 4000 + b'"'
    (status, _, body), = exchange(site, post(b"/accounts/login/", b"x=1", attack))[0]
    assert status == 400 and b"nginx" in body
    longest = b"application/x-www-form-urlencoded; charset=utf-8; x="
    longest += b"y" * (256 - len(longest))
    (status, _, _), = exchange(site, post(b"/accounts/login/", b"x=1", longest))[0]
    assert status == 403  # Django's CSRF refusal: the request got through
    # A second Content-Type line would pass the check unseen; nginx forwards only the first: with
    # the second, gunicorn would take multipart and guard would answer 415.
    second = b"Content-Type: multipart/form-data; boundary=b\r\n"
    (status, _, _), = exchange(site, post(b"/accounts/login/", b"x=1", headers=second))[0]
    assert status == 403
    Browser(site.url).signup("ct%s" % uuid.uuid4().hex[:8])  # GET the form, POST it: 200


def test_cookie_backslashes_are_refused(site):
    """nginx answers 400 to cookies holding more than 32 backslashes (CVE-2024-7592: 8,000 in one
    cookie, or 20 in each of two Cookie lines), before CPython 3.7's http.cookies unquotes them;
    32 pass, and so do the site's own cookies."""
    only(site, ("ipc",))
    for cookie in (b'Cookie: a="' + b"\\" * 8000 + b'"\r\n',
                   b'Cookie: a="' + b"\\" * 20 + b'"\r\nCookie: b="' + b"\\" * 20 + b'"\r\n'):
        (status, _, _), = exchange(site, get(b"/accounts/login/", headers=cookie))[0]
        assert status == 400
    (status, _, _), = exchange(site, get(b"/accounts/login/", headers=b'Cookie: a="' + b"\\" * 32 + b'"\r\n'))[0]
    assert status == 200
    browser = Browser(site.url).signup("cb%s" % uuid.uuid4().hex[:8])
    assert browser.get("/rooms/lobby/").status == 200


def handshake(site, cookie, extra=b""):
    return (b"GET /ws/rooms/lobby/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nOrigin: %s\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Cookie: %s\r\n" % (site.port, site.url.encode(), cookie.encode())) + extra + b"\r\n"


def test_handshake_header_separators_are_refused(site):
    """A WebSocket handshake whose header value holds a byte autobahn ends a line at
    (CVE-2026-44546: `X-Probe: a\\x0bX-Forwarded-For: 6.6.6.6` became a header of its own) gets 400
    from the interface, through nginx and (asgi shape) straight to daphne; a plain one gets 101."""
    only(site, SHAPES)
    cookie = Browser(site.url).signup("hs%s" % uuid.uuid4().hex[:8]).cookie_header()
    targets = [None] + ([site.paths.daphne_socket(0)] if site.layout == "asgi-ipc" else [])
    for unix in targets:
        for byte in LINE_BREAKS:
            probe = b"X-Probe: a" + byte + b"X-Forwarded-For: 6.6.6.6\r\n"
            (status, _, _), = exchange(site, handshake(site, cookie, probe), unix=unix)[0]
            assert status == 400, (unix, byte)
        (status, _, _), = exchange(site, handshake(site, cookie), unix=unix)[0]
        assert status == 101, unix


def test_nginx_errors_carry_the_security_headers(site):
    """nginx's own answers (400 to a malformed header, 413 to a body over 1 MiB, 404 of a static
    file) carry each security header once, as Django's pages do (nginx adds them and hides the
    upstream's copy); /healthz names no Python version."""
    only(site, ("ipc",))
    answers = {
        400: exchange(site, get(b"/", headers=b"X-Nul: a\x00b\r\n"))[0][0],
        413: exchange(site, post(b"/accounts/login/", b"x" * (1024 * 1024 + 1)))[0][0],
        404: exchange(site, get(b"/static/no/such/file.js"))[0][0],
        200: exchange(site, get(b"/accounts/login/"))[0][0],
    }
    for expected, (status, headers, _) in answers.items():
        assert status == expected
        for name, value in HEADERS:
            assert headers.get_all(name) == [value], (status, name, headers.get_all(name))
    (status, _, body), = exchange(site, get(b"/healthz"))[0]
    assert status == 200 and "python" not in json.loads(body.decode())


def test_client_root_path_is_ignored(site):
    """A client's Daphne-Root-Path header (daphne 1.4 made it the request's script prefix, so the
    links Django builds in the answer would point under the client's path) changes nothing, through
    nginx and straight to daphne (the asgi shape serves every page from daphne)."""
    only(site, ("asgi-ipc",))
    for unix in (None, site.paths.daphne_socket(0)):
        (status, _, body), = exchange(site, get(b"/accounts/login/", headers=b"Daphne-Root-Path: /evil\r\n"),
                                      unix=unix)[0]
        assert status == 200 and b"/evil" not in body, (unix, body[:300])
        assert b'href="/accounts/signup/"' in body

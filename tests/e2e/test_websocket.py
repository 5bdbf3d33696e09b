"""RFC 6455 through nginx and daphne: a conformance fuzzer, empty messages, subprotocols."""
import base64
import json
import os
import re
import socket
import subprocess

import pytest
import websocket

from chat import protocol
from harness.client import Browser, receive_until
from harness.servers import REPO

WSTEST = os.path.join(REPO, "tests", "autobahn", "venv", "bin", "wstest")
# Autobahn|Testsuite's cases: framing, pings, reserved bits, opcodes, fragmentation, UTF-8, closing,
# automatic fragmentation. Left out: 9 (performance, messages up to 16 MiB: over the 64 KiB limit)
# and 12-13 (compression, which daphne 1.4 does not offer).
CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*"]
EXPLAINED = os.path.join(REPO, "docs", "websocket.md")


def explained_outcomes():
    """{case: outcome} of the cases docs/websocket.md lists as not plainly OK, each with its reason."""
    with open(EXPLAINED) as doc:
        return dict(re.findall(r"^\| (\d+(?:\.\d+)+) \| (NON-STRICT|INFORMATIONAL) \|", doc.read(), re.M))


@pytest.mark.skipif(not os.path.exists(WSTEST),
                    reason="the fuzzer is not installed (make test runs bin/setup-autobahn)")
def test_fuzzer_fails_no_case(site):
    """Autobahn|Testsuite's fuzzing client against /ws/echo/ through nginx, daphne, the layer and a
    worker: no case FAILED, and every case that is not plainly OK is one docs/websocket.md explains,
    with the outcome it gives there."""
    out = os.path.join(site.var_dir, "autobahn")
    agent = "chat-%s" % site.layout
    spec = os.path.join(site.var_dir, "fuzzingclient.json")
    with open(spec, "w") as f:
        json.dump({"outdir": out, "cases": CASES, "exclude-cases": [], "exclude-agent-cases": {},
                   "servers": [{"agent": agent, "url": site.url.replace("http", "ws", 1) + "/ws/echo/",
                                "origin": site.url, "options": {"version": 18}}]}, f)
    result = subprocess.run([WSTEST, "-m", "fuzzingclient", "-s", spec], cwd=site.var_dir,
                            env=dict(os.environ, PYTHONWARNINGS="ignore"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:]
    with open(os.path.join(out, "index.json")) as index:
        results = json.load(index)[agent]
    assert len(results) > 240, "the fuzzer ran %d cases" % len(results)
    outcomes = {case: r["behavior"] for case, r in results.items() if r["behavior"] != "OK"}
    outcomes.update((case, r["behaviorClose"]) for case, r in results.items()
                    if r["behaviorClose"] != "OK" and r["behavior"] == "OK")
    assert not [case for case, outcome in outcomes.items() if outcome not in ("NON-STRICT", "INFORMATIONAL")], \
        outcomes
    explained = explained_outcomes()
    unexplained = {case: outcome for case, outcome in outcomes.items() if explained.get(case) != outcome}
    assert not unexplained, "outcomes docs/websocket.md does not explain: %s" % unexplained


def test_empty_messages_are_echoed(site):
    """An empty text message, an empty binary one and an empty text sent in two fragments each come
    back (daphne 1.4 sent nothing for a reply whose payload was empty)."""
    ws = Browser(site.url).websocket("/ws/echo/")
    try:
        ws.send("")
        assert ws.recv_data() == (websocket.ABNF.OPCODE_TEXT, b"")
        ws.send_binary(b"")
        assert ws.recv_data() == (websocket.ABNF.OPCODE_BINARY, b"")
        ws.send_frame(websocket.ABNF.create_frame("", websocket.ABNF.OPCODE_TEXT, fin=0))
        ws.send_frame(websocket.ABNF.create_frame("", websocket.ABNF.OPCODE_CONT, fin=1))
        assert ws.recv_data() == (websocket.ABNF.OPCODE_TEXT, b"")
        ws.send("still echoing")
        assert ws.recv() == "still echoing"
    finally:
        ws.close()


def handshake(site, user, offer):
    """The status line and headers of a WebSocket handshake on the chat socket offering `offer`."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = ("GET /ws/rooms/lobby/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
               "Origin: %s\r\nCookie: %s\r\nSec-WebSocket-Protocol: %s\r\n\r\n"
               % (site.port, key, site.url, user.cookie_header(), offer))
    with socket.create_connection(("127.0.0.1", site.port), timeout=15) as sock:
        sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, "closed during the handshake: %r" % head
            head += chunk
    lines = head.split(b"\r\n\r\n")[0].decode().split("\r\n")
    return lines[0], {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}


def test_chat_subprotocol(site, user):
    """The chat socket selects the frames' version (chat.v1) among the subprotocols a client offers;
    a client offering none is served without one; one offering only an unknown protocol is
    answered without a Sec-WebSocket-Protocol header (RFC 6455 4.2.2), and the client decides."""
    assert protocol.VERSION == "chat.v1"
    for offer, selected in (([], None), (["chat.v0", protocol.VERSION], protocol.VERSION)):
        ws = user.websocket("/ws/rooms/lobby/", **({"subprotocols": offer} if offer else {}))
        try:
            assert ws.getsubprotocol() == selected
            client_id = "sub-%s" % selected
            ws.send(json.dumps({"type": "message", "text": "with %s" % selected, "client_id": client_id}))
            assert receive_until(ws, lambda f: f["type"] == "ack")[0]["client_id"] == client_id
        finally:
            ws.close()
    status, headers = handshake(site, user, "chat.v0")
    assert status.split()[1] == "101", status
    assert "sec-websocket-protocol" not in headers

"""The deployment end to end, in each shape: nginx routes to gunicorn, daphne and the worker pools."""
import json
import os
import signal
import time
import uuid

import pytest
import websocket

from harness.client import Browser, receive_until
from harness.servers import wait_for
from harness.sites import PYTHON
from ops.deployment import executable


def echo_on_a_new_socket(site, text):
    """Open /ws/echo/, get `text` back through daphne and a realtime worker, close."""
    ws = Browser(site.url).websocket("/ws/echo/")
    try:
        ws.send(text)
        assert ws.recv() == text
    finally:
        ws.close()


def test_pages_are_served_as_the_shape_says(site):
    """Pages and forms are rendered by gunicorn in the split shape, by the realtime workers through
    daphne in the asgi shape, and by both in the inverse one (CHAT_WSGI_PATHS to gunicorn)."""
    for path, text in (("/", "Lobby"), ("/accounts/login/", "csrfmiddlewaretoken")):
        resp = Browser(site.url).get(path)
        assert resp.status == 200 and text in resp.text, (path, resp.status)
        assert resp.headers["X-Served-By"].split("/")[0] == site.page_pool(path), path


def test_a_websocket_handshake_on_any_path_reaches_daphne(site):
    """The Upgrade header decides, not only the path: a WebSocket handshake on a path gunicorn
    serves goes to daphne (nginx's access log names the upstream of every request)."""
    path = "/accounts/login/?handshake=%s" % uuid.uuid4().hex
    try:
        Browser(site.url).websocket(path).close()  # no consumer answers it there; the route is the point
    except websocket.WebSocketException:
        pass
    log = os.path.join(site.paths.log, "nginx-access.log")
    wait_for(lambda: path in open(log).read(), 10, "the handshake in the access log")
    line = [line for line in open(log).read().splitlines() if path in line][-1]
    assert "upstream=unix:%s/daphne-" % site.paths.run in line, line


def test_static_files_come_from_disk(site):
    """/static/ is served by nginx from the collected files, no Python involved."""
    resp = Browser(site.url).get("/static/chat/chat.css")
    assert resp.status == 200
    assert "X-Served-By" not in resp.headers


def test_healthz(site):
    """/healthz answers 200 with JSON naming the layer."""
    resp = Browser(site.url).get("/healthz")
    assert resp.status == 200
    assert resp.json()["layer"] == site.env["CHAT_LAYER"]


def test_nginx_hides_its_version(site):
    """server_tokens off: no nginx version in the Server header."""
    assert Browser(site.url).get("/healthz").headers["Server"] == "nginx"


def test_websocket_reaches_the_realtime_pool(site):
    """A WebSocket under /ws/ goes through daphne and is consumed by a realtime worker."""
    ws = Browser(site.url).websocket("/ws/echo/")
    try:
        ws.send("whoami")
        assert json.loads(ws.recv())["pool"] == "realtime"
        ws.send("plain echo")
        assert ws.recv() == "plain echo"
    finally:
        ws.close()


def test_poll_reaches_the_realtime_pool(site, user):
    """An HTTP request under /poll/ goes through daphne and is answered by a realtime worker."""
    post(user, "for the poll")
    resp = user.get("/poll/rooms/lobby/?after=0")
    assert resp.status == 200, resp.text
    assert resp.headers["X-Served-By"].startswith("realtime/")
    assert "for the poll" in [m["text"] for m in resp.json()]


def post(user, text, room="lobby"):
    """Send one message over a fresh socket; returns its ack."""
    ws = user.websocket("/ws/rooms/%s/" % room)
    try:
        ws.send(json.dumps({"type": "message", "text": text, "client_id": text}))
        return receive_until(ws, lambda f: f["type"] == "ack")[0]
    finally:
        ws.close()


def test_chat_message_round_trip(site, user):
    """A logged-in user's message is acked and broadcast back over the room socket."""
    ws = user.websocket("/ws/rooms/lobby/")
    try:
        ws.send(json.dumps({"type": "message", "text": "hello e2e", "client_id": "rt-1"}))
        ack, _ = receive_until(ws, lambda f: f["type"] == "ack")
        assert ack["client_id"] == "rt-1" and ack["id"] >= 1
    finally:
        ws.close()
    history = user.get("/rooms/lobby/messages?after=%d" % (ack["id"] - 1)).json()
    assert history[0]["text"] == "hello e2e"


def test_background_work_runs_only_in_the_background_pool(site, user):
    """background.* is consumed by the background pool only: the moderation consumer records its
    pool, and every probe on background.probe (and none on diag.probe) is answered by it."""
    ws = user.websocket("/ws/rooms/lobby/")
    try:
        ws.send(json.dumps({"type": "message", "text": "BUY NOW!!!", "client_id": "bg-1"}))
        ack, _ = receive_until(ws, lambda f: f["type"] == "ack")
    finally:
        ws.close()
    code = ("from chat.models import Message; "
            "print(Message.objects.get(room__slug='lobby', seq=%d).moderated_by)" % ack["id"])
    wait_for(lambda: site.shell(code) != "", 20, "the message to be moderated")
    assert site.shell(code).startswith("background/")
    for channel, pool in (("background.probe", "background"), ("diag.probe", "default")):
        for _ in range(3):
            result = site.manage("probe", channel)
            assert result.returncode == 0, result.stderr
            assert json.loads(result.stdout)["pool"] == pool


def test_websockets_survive_stopping_gunicorn(site):
    """With gunicorn stopped, its pages fail (502) but WebSockets keep working through daphne (and
    in the inverse shape so do the pages daphne serves)."""
    if site.topology == "asgi":
        pytest.skip("no gunicorn runs in the asgi shape")
    ws = Browser(site.url).websocket("/ws/echo/")
    supervisor = site.supervisor()
    supervisor.stopProcess("gunicorn:gunicorn")
    try:
        assert Browser(site.url).get("/accounts/login/").status == 502
        assert Browser(site.url).get("/").status == (200 if site.topology == "inverse" else 502)
        ws.send("still here")
        assert ws.recv() == "still here"
        echo_on_a_new_socket(site, "new socket")
    finally:
        supervisor.startProcess("gunicorn:gunicorn")
        ws.close()
    wait_for(site.healthy, 20, "gunicorn back")


def test_pages_survive_stopping_the_workers(site):
    """With every worker pool stopped, gunicorn still serves its pages."""
    if site.topology == "asgi":
        pytest.skip("every page of the asgi shape needs a worker (test_pages_without_workers_answer_503)")
    supervisor = site.supervisor()
    pools = ("realtime", "background", "default")
    for pool in pools:
        supervisor.stopProcessGroup(pool)
    try:
        resp = Browser(site.url).get("/accounts/login/")
        assert resp.status == 200 and resp.headers["X-Served-By"].startswith("web/")
    finally:
        for pool in pools:
            supervisor.startProcessGroup(pool)


def test_pages_without_workers_answer_503(site):
    """The Deploying guide's --http-timeout: with the pool serving http.request stopped, a page
    through daphne waits CHAT_HTTP_TIMEOUT seconds and answers 503; it recovers with the pool."""
    if site.topology != "asgi":
        pytest.skip("tested where every page goes through daphne")
    timeout = int(site.env["CHAT_HTTP_TIMEOUT"])
    supervisor = site.supervisor()
    supervisor.stopProcessGroup("realtime")
    try:
        started = time.time()
        resp = Browser(site.url).get("/", timeout=timeout + 30)
        waited = time.time() - started
        assert resp.status == 503, resp.status
        assert timeout - 1 <= waited < timeout + 10, waited
    finally:
        supervisor.startProcessGroup("realtime")
    wait_for(site.healthy, 30, "pages back with the pool")
    assert Browser(site.url).get("/").status == 200


def test_sigterm_to_a_worker_brings_a_new_one(site):
    """A worker that gets SIGTERM exits cleanly and supervisord starts a new one."""
    name = "realtime:workers-realtime_00"
    old = site.wait_running(name)["pid"]
    os.kill(old, signal.SIGTERM)
    wait_for(lambda: site.supervisor().getProcessInfo(name)["pid"] not in (0, old), 30, "a new worker")
    new = site.wait_running(name)
    assert new["pid"] != old
    echo_on_a_new_socket(site, "after restart")


def test_one_daphne_down_keeps_the_site_up(site):
    """With one daphne stopped, nginx sends new sockets and polls to the other."""
    supervisor = site.supervisor()
    supervisor.stopProcess("daphne:daphne_00")
    try:
        for _ in range(4):
            echo_on_a_new_socket(site, "x")
    finally:
        supervisor.startProcess("daphne:daphne_00")


def test_every_program_runs(site):
    """Every program of the shape is RUNNING: redis, or epmd and the RabbitMQ broker, only where
    supervisord runs them, gunicorn in every shape but asgi, the reclaimer on every layer but
    RabbitMQ, a cluster's Sentinel and PostgreSQL never on one machine."""
    states = {i["group"] + ":" + i["name"]: i["statename"] for i in site.processes()}
    assert states.pop("sentinel:sentinel") == states.pop("postgres:postgres") == "STOPPED"
    assert states.pop("redis:redis") == ("RUNNING" if site.own_redis else "STOPPED")
    assert states.pop("epmd:epmd") == states.pop("rabbitmq:rabbitmq") == ("RUNNING" if site.own_broker else "STOPPED")
    assert states.pop("gunicorn:gunicorn") == ("STOPPED" if site.topology == "asgi" else "RUNNING")
    # RabbitMQ gives a dead worker's message to another worker itself: no reclaimer there.
    assert states.pop("reclaim:reclaim") == ("STOPPED" if site.env.get("CHAT_LAYER") == "rabbitmq" else "RUNNING")
    assert set(states.values()) == {"RUNNING"}, states
    assert len([n for n in states if n.startswith("daphne:")]) == 2


def test_daphne_and_workers_run_on_their_own_pythons(site):
    """The Deploying guide's portability: daphne runs on the interface's Python (venv-interface/, a
    current CPython where make built it), the workers on 3.7, and one layer carries everything
    between them (the rest of the suite talks to this very site)."""
    venv = site.shell("from django.conf import settings; print(settings.CHAT_INTERFACE_VENV)")
    interface = os.path.join(venv, "bin", "python") if venv else ""
    workers = os.path.basename(os.path.realpath(PYTHON))
    expected = os.path.basename(os.path.realpath(interface)) if os.path.exists(interface) else workers
    assert workers == "python3.7"
    assert {executable(i["pid"]) for i in site.processes("daphne")} == {expected}
    assert {executable(i["pid"]) for i in site.processes("realtime")} == {workers}
    if expected != workers:
        assert tuple(int(part) for part in expected[len("python"):].split(".")) >= (3, 10), expected

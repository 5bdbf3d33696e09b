"""The site from the Procfile, as a platform runs it (make paas): daphne alone on $PORT, the redis
layer, static files from the app; the contract holds there too."""
import json
import os
import re

import pytest

from harness.client import Browser, receive_until
from harness.servers import REPO
from harness.sites import PaasSite

from .deployed import deployed


@pytest.fixture(scope="module")
def paas(request):
    with deployed(request, PaasSite(CHAT_LAYER="redis", CHAT_POLL_HOLD="3"), "paas") as site:
        yield site


def test_the_procfile_names_every_process_type():
    """release, web, worker (all channels), worker_background, delay and redis, each one command."""
    with open(os.path.join(REPO, "Procfile")) as procfile:
        types = dict(re.findall(r"^([a-z_]+): (.+)$", procfile.read(), re.M))
    assert set(types) == {"release", "web", "worker", "worker_background", "delay", "redis"}
    assert "$PORT" in types["web"] and "migrate" in types["release"]


def test_pages_forms_and_static_files_come_from_daphne(paas):
    """Sign-up and login with CSRF, the room page and its static files, all through daphne on
    $PORT (no nginx, no gunicorn): pages by the workers, static files by WhiteNoise."""
    browser = Browser(paas.url).signup("paas-user")
    page = browser.get("/rooms/lobby/")
    assert page.status == 200 and page.headers["X-Served-By"].startswith("worker/")
    css = browser.get("/static/chat/chat.css")
    assert css.status == 200 and "text/css" in css.headers["Content-Type"]
    assert Browser(paas.url).login("paas-user").cookie("sessionid")


def test_chat_history_and_long_poll(paas):
    """A WebSocket message is acked and broadcast, history lists it, a held long-poll is answered
    by it, and an idle one by the delay process with []."""
    user = Browser(paas.url).signup("paas-chat")
    last = user.get("/rooms/lobby/messages?after=0").json()
    after = last[-1]["id"] if last else 0
    ws = user.websocket("/ws/rooms/lobby/")
    try:
        ws.send(json.dumps({"type": "message", "text": "from the platform", "client_id": "paas-1"}))
        ack = receive_until(ws, lambda f: f["type"] == "ack")[0]
    finally:
        ws.close()
    assert ack["id"] == after + 1
    assert [m["text"] for m in user.get("/rooms/lobby/messages?after=%d" % after).json()] == ["from the platform"]
    assert user.get("/poll/rooms/lobby/?after=%d" % after).json()[0]["text"] == "from the platform"
    assert user.get("/poll/rooms/lobby/?after=%d" % ack["id"], timeout=30).json() == []

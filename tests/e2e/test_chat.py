"""The chat's guarantees through the real deployment: gapless ids, exactly-once for users, ordering,
long-poll, bad input, and slow work kept off the realtime path."""
import json
import os
import random
import signal
import threading
import time
import uuid

import pytest
import websocket

from harness.client import Browser, receive_until
from harness.servers import wait_for

from .chatter import Chatter

# Layouts whose channel layer another layout runs in the same way (the shape differs, not what a
# SIGKILLed worker does to the layer's messages): tests of the layer alone run once per layer, to
# keep make test near 25 minutes.
SAME_LAYER_AS = {"asgi-ipc": "ipc", "inverse-redis": "redis"}


def new_room(site):
    """A fresh room (created through the form, CSRF and all); returns its slug."""
    name = "room %s" % uuid.uuid4().hex[:8]
    browser = Browser(site.url).signup("owner-%s" % uuid.uuid4().hex[:8])
    resp = browser.post_form("/rooms/", {"name": name}, form_page="/")
    assert resp.status == 200, resp.text[:300]
    return name.replace(" ", "-")


def chatters(site, room, count):
    return [Chatter(site.url, "u%s" % uuid.uuid4().hex[:10], room).connect() for _ in range(count)]


def stored(site, room):
    """(seq, username, client_id, text) of every stored message of the room."""
    out = site.shell(
        "import json; from chat.models import Message; print(json.dumps(list(Message.objects.filter("
        "room__slug=%r).order_by('seq').values_list('seq', 'user__username', 'client_id', 'text'))))" % room)
    return [tuple(row) for row in json.loads(out)]


def check_exactly_once(site, room, people, sent):
    """Every message is stored once, ids run 1..N, and every user sees exactly the stored list."""
    rows = stored(site, room)
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1)), "ids are not gapless"
    client_ids = [r[2] for r in rows]
    assert len(client_ids) == len(set(client_ids)), "a message was stored twice"
    assert set(client_ids) == set(sent), "stored %d of %d sent" % (len(set(client_ids) & set(sent)), len(sent))
    for person in people:
        view = [(f.get("seq", f["id"]), f["client_id"]) for f in person.view()]
        assert view == [(r[0], r[2]) for r in rows], "%s's view differs from the store" % person.username


def test_concurrent_senders_converge(site):
    """Four users sending at once: ids are gapless, nothing is stored twice, every view equals the
    store in id order."""
    room = new_room(site)
    people = chatters(site, room, 4)
    sent = []

    def talk(person):
        for n in range(15):
            sent.append(person.send("%s says %d" % (person.username, n)))
    threads = [threading.Thread(target=talk, args=(p,)) for p in people]
    [t.start() for t in threads]
    [t.join() for t in threads]
    for person in people:
        assert person.settle(60)
    check_exactly_once(site, room, people, sent)
    for person in people:
        person.close()


def test_one_socket_is_handled_in_order(site):
    """Frames sent back to back on one socket (within the rate limit's burst), with several workers,
    are stored in send order."""
    room = new_room(site)
    person = chatters(site, room, 1)[0]
    ids = [person.send("n%02d" % n) for n in range(18)]
    assert person.settle(60)
    rows = stored(site, room)
    assert [r[2] for r in rows] == ids
    person.close()


def test_dropped_socket_resends_once(site):
    """A socket dropped right after sending: the client resends on reconnect and the message is
    stored and shown once."""
    room = new_room(site)
    person, other = chatters(site, room, 2)
    client_id = person.send("maybe lost")
    person.close()
    assert person.settle(30)
    assert other.settle(30)
    check_exactly_once(site, room, [person, other], [client_id])
    person.close()
    other.close()


def test_workers_killed_mid_message_lose_nothing(site):
    """Realtime workers are SIGKILLed while messages are in flight: after resends every message is
    stored once and every user sees each exactly once."""
    if site.layout in SAME_LAYER_AS:
        pytest.skip("a killed worker's frames are the layer's affair: run on %s" % SAME_LAYER_AS[site.layout])
    room = new_room(site)
    people = chatters(site, room, 3)
    sent = []
    stop = threading.Event()

    def talk(person):
        n = 0
        while not stop.is_set():
            sent.append(person.send("%s %d" % (person.username, n)))
            n += 1
            time.sleep(0.02)
    threads = [threading.Thread(target=talk, args=(p,)) for p in people]
    [t.start() for t in threads]
    for _ in range(3):
        time.sleep(0.5)
        victim = random.choice(site.processes("realtime"))
        if victim["pid"]:
            os.kill(victim["pid"], signal.SIGKILL)
    time.sleep(0.5)
    stop.set()
    [t.join() for t in threads]
    wait_for(lambda: all(i["statename"] == "RUNNING" for i in site.processes("realtime")), 30,
             "the realtime pool back")
    for person in people:
        assert person.settle(90), "%s still has %d unacked" % (person.username, len(person.outbox))
    check_exactly_once(site, room, people, sent)
    for person in people:
        person.close()


def test_daphne_restart_loses_nothing(site):
    """Each daphne restarts in turn while users send: sockets reconnect, resend and catch up."""
    room = new_room(site)
    people = chatters(site, room, 4)
    sent = []
    supervisor = site.supervisor()
    for daphne in ("daphne:daphne_00", "daphne:daphne_01"):
        for person in people:
            sent.append(person.send("before %s from %s" % (daphne, person.username)))
        supervisor.stopProcess(daphne)
        for person in people:
            sent.append(person.send("during %s from %s" % (daphne, person.username)))
        supervisor.startProcess(daphne)
        site.wait_running(daphne)
    for person in people:
        assert person.settle(60)
    check_exactly_once(site, room, people, sent)
    assert sum(p.reconnects for p in people) >= 1  # some sockets really were on a restarted daphne
    for person in people:
        person.close()


def test_long_poll_is_released_by_a_message(site):
    """A held long-poll is answered as soon as a message arrives in the room."""
    room = new_room(site)
    reader = Browser(site.url).signup("poller-%s" % uuid.uuid4().hex[:8])
    result = {}

    def poll():
        started = time.time()
        result["resp"] = reader.get("/poll/rooms/%s/?after=0" % room)
        result["took"] = time.time() - started
    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(1.0)
    writer = chatters(site, room, 1)[0]
    writer.send("wake up")
    thread.join(20)
    assert result["resp"].status == 200
    assert [m["text"] for m in result["resp"].json()] == ["wake up"]
    assert result["took"] < int(site.env["CHAT_POLL_HOLD"])
    writer.close()


def test_long_poll_expires_empty(site):
    """A held long-poll with nothing new is answered [] after the hold (CHAT_POLL_HOLD)."""
    room = new_room(site)
    started = time.time()
    resp = Browser(site.url).signup("idle-%s" % uuid.uuid4().hex[:8]).get("/poll/rooms/%s/?after=0" % room)
    assert resp.status == 200 and resp.json() == []
    assert time.time() - started >= int(site.env["CHAT_POLL_HOLD"]) - 0.5


def test_anonymous_poll_is_forbidden(site):
    """A long-poll without a session gets 403."""
    assert Browser(site.url).get("/poll/rooms/lobby/?after=0").status == 403


@pytest.mark.parametrize("case", ["anonymous", "foreign origin", "unknown room"])
def test_refused_handshakes(site, case):
    """An anonymous socket, a foreign Origin and an unknown room are refused at the handshake."""
    browser = Browser(site.url)
    path, origin = "/ws/rooms/lobby/", None
    if case != "anonymous":
        browser.signup("h%s" % uuid.uuid4().hex[:10])
    if case == "foreign origin":
        origin = "http://evil.example"
    if case == "unknown room":
        path = "/ws/rooms/no-such-room/"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        browser.websocket(path, origin=origin)
    assert refused.value.status_code == 403


def test_bad_frames_over_the_wire(site, user):
    """Bad frames through nginx and daphne get error frames and the socket stays usable."""
    ws = user.websocket("/ws/rooms/lobby/")
    try:
        for text, code in (("not json", "invalid_json"), ("[]", "not_an_object"),
                           ('{"type": "x"}', "unknown_type"),
                           ('{"type": "message", "text": "", "client_id": "e"}', "invalid_text"),
                           ("[" * 100 + "]" * 100, "too_deep")):
            ws.send(text)
            frame, _ = receive_until(ws, lambda f: f["type"] == "error")
            assert frame["code"] == code
        ws.send(json.dumps({"type": "ping"}))
        receive_until(ws, lambda f: f["type"] == "pong")
    finally:
        ws.close()


def test_background_pool_down_does_not_delay_chat(site, user):
    """With the background pool stopped, chat messages are still acked at once; the queued scoring
    runs when the pool comes back."""
    supervisor = site.supervisor()
    supervisor.stopProcessGroup("background")
    try:
        room = new_room(site)
        person = chatters(site, room, 1)[0]
        started = time.time()
        person.send("scored later")
        assert person.settle(10)
        assert time.time() - started < 5
        person.close()
    finally:
        supervisor.startProcessGroup("background")
    code = ("from chat.models import Message; print(Message.objects.get(room__slug=%r).moderated_by)" % room)
    wait_for(lambda: site.shell(code).startswith("background/"), 30, "the scoring to catch up")

"""Mentions through the real deployment: the background pool notifies every socket of the user named,
in any room, and the notifications page lists it (read state, mark read) for users online or not."""
import json
import re
import time
import uuid

import pytest

from harness.client import Browser, receive_until
from harness.servers import wait_for

from .test_chat import new_room

# The feature is the same on every layer and shape (a background.* job, a group send): one layout.
NOTIFY_LAYOUTS = ("redis",)
UNREAD = re.compile(r'id="notifications"[^>]*data-unread="(\d+)"')


@pytest.fixture
def notify_site(site):
    if site.layout not in NOTIFY_LAYOUTS:
        pytest.skip("notifications run against one layout")
    return site


def person(site, prefix):
    name = "%s%s" % (prefix, uuid.uuid4().hex[:8])
    return name, Browser(site.url).signup(name)


def open_socket(browser, slug):
    """A socket in the room, once it is in its groups (its own join announced)."""
    ws = browser.websocket("/ws/rooms/%s/" % slug)
    receive_until(ws, lambda f: f["type"] == "presence")
    return ws


def say(ws, text):
    client_id = uuid.uuid4().hex
    ws.send(json.dumps({"type": "message", "text": text, "client_id": client_id}))
    ack, _ = receive_until(ws, lambda f: f["type"] == "ack" and f["client_id"] == client_id)
    return ack["id"]


def unread(browser):
    return int(UNREAD.search(browser.get("/").text).group(1))


def test_mention_notifies_other_rooms_socket_and_page(notify_site):
    """B has a socket open in the lobby; A writes @B in another room: B's socket gets the
    notification frame within seconds, the page lists it unread, following it marks it read, and
    "mark all read" clears the rest; a user with no socket finds the mention on their next page."""
    site = notify_site
    room = new_room(site)
    _, alice = person(site, "a")
    bob_name, bob = person(site, "b")
    carol_name, carol = person(site, "c")
    bob_ws = open_socket(bob, "lobby")
    alice_ws = open_socket(alice, room)
    started = time.monotonic()
    seq = say(alice_ws, "hey @%s, and @%s. see a@b.c" % (bob_name, carol_name))
    bob_ws.settimeout(5)
    frame, _ = receive_until(bob_ws, lambda f: f["type"] == "notification")
    latency = time.monotonic() - started
    assert frame["room"] == room and frame["message_id"] == seq and frame["unread"] == 1
    assert frame["from"].startswith("a") and frame["text"].startswith("hey @%s" % bob_name)
    print("mention to notification frame: %.0f ms" % (latency * 1000))

    page = bob.get("/notifications/").text
    assert 'data-id="%d" data-state="unread"' % frame["id"] in page
    assert 'data-room-url="/rooms/%s/#m%d"' % (room, seq) in page
    assert unread(bob) == 1
    opened = bob.get("/notifications/%d/" % frame["id"])  # follows the redirect to the room
    assert opened.status == 200 and 'data-state="read"' in bob.get("/notifications/").text
    assert unread(bob) == 0

    second = say(alice_ws, "@%s again" % bob_name)
    frame, _ = receive_until(bob_ws, lambda f: f["type"] == "notification")
    assert frame["message_id"] == second and frame["unread"] == 1
    resp = bob.post_form("/notifications/read", {}, form_page="/notifications/")
    assert resp.status == 200 and unread(bob) == 0

    # Carol had no socket open: the notification waits for her next page.
    wait_for(lambda: unread(carol) == 1, 10, "carol's badge to count the mention")
    assert 'data-room-url="/rooms/%s/#m%d"' % (room, seq) in carol.get("/notifications/").text
    bob_ws.close()
    alice_ws.close()

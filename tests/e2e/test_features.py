"""Issue 17's chat features through the real deployment (one layout, on PostgreSQL): edits and
deletes seen live and caught up in their current state, read marks shared by a user's sockets,
private rooms refused on every path and a removed member's socket closed."""
import json
import time
import uuid

import pytest
import websocket

from harness.client import Browser, receive_until

from .chatter import Chatter

LAYOUT = "redis-sharded-postgres"


@pytest.fixture
def feature_site(site):
    if site.layout != LAYOUT:
        pytest.skip("the features do not depend on the layer: one layout, the one on PostgreSQL")
    return site


def new_room(site, owner, private=False):
    name = "room %s" % uuid.uuid4().hex[:8]
    fields = {"name": name, "private": "on"} if private else {"name": name}
    assert owner.post_form("/rooms/", fields, form_page="/").status == 200
    return name.replace(" ", "-")


def test_edit_and_delete_reach_members_and_catch_up(feature_site):
    """A message edited then deleted: a member sees the edit and the delete live, a user joining
    later catches up to the current state (text gone), and the history API holds no deleted text."""
    alice, bob = (Chatter(feature_site.url, "%s%s" % (n, uuid.uuid4().hex[:8])) for n in "ab")
    room = new_room(feature_site, alice.browser)
    for person in (alice, bob):
        person.room = room
        person.connect()
    alice.send("frist")
    assert alice.settle(20)
    message_id = alice.acks[list(alice.acks)[0]]
    alice.edit(message_id, "first")
    assert alice.settle(20)
    deadline = time.time() + 10
    while bob.current().get(message_id) != ("first", False) and time.time() < deadline:
        time.sleep(0.1)
    assert bob.current()[message_id] == ("first", False)
    alice.delete(message_id)
    alice.send("second")
    assert alice.settle(20) and bob.settle(20)
    late = Chatter(feature_site.url, "c%s" % uuid.uuid4().hex[:8], room).connect()
    assert late.settle(20)
    for person in (alice, bob, late):
        assert person.current()[message_id] == ("", True), person.username
        assert sorted(person.current().values())[-1] == ("second", False)
    history = alice.browser.get("/rooms/%s/messages?after=0" % room).text
    assert "frist" not in history and '"first"' not in history
    for person in (alice, bob, late):
        person.close()


def test_read_marks_are_shared_and_counted(feature_site):
    """Two messages are unread for bob on the room list; a read frame on one of his sockets clears
    the count and reaches his other socket as a read frame."""
    alice = Chatter(feature_site.url, "a%s" % uuid.uuid4().hex[:8])
    bob = Browser(feature_site.url).signup("b%s" % uuid.uuid4().hex[:8])
    room = new_room(feature_site, alice.browser)
    alice.room = room
    alice.connect()
    alice.send("one")
    alice.send("two")
    assert alice.settle(20)
    assert 'data-room="%s" data-unread="2"' % room in bob.get("/").text
    first, second = (bob.websocket("/ws/rooms/%s/" % room) for _ in range(2))
    first.send(json.dumps({"type": "read", "id": 2}))
    frame, _ = receive_until(second, lambda f: f["type"] == "read")
    assert (frame["room"], frame["id"], frame["unread"]) == (room, 2, 0)
    assert 'data-room="%s" data-unread="0"' % room in bob.get("/").text
    for ws in (first, second):
        ws.close()
    alice.close()


def test_private_room_refuses_non_members_and_closes_removed(feature_site):
    """A non-member is refused on the page, the history, the send, the long-poll and the WebSocket;
    once invited they get in; removed, their open socket is closed within a second."""
    owner = Browser(feature_site.url).signup("o%s" % uuid.uuid4().hex[:8])
    name = "m%s" % uuid.uuid4().hex[:8]
    member = Browser(feature_site.url).signup(name)
    room = new_room(feature_site, owner, private=True)
    assert member.get("/rooms/%s/" % room).status == 403
    assert member.get("/rooms/%s/messages?after=0" % room).json()["code"] == "not_a_member"
    assert member.get("/poll/rooms/%s/?after=0" % room).json()["code"] == "not_a_member"
    with pytest.raises(websocket.WebSocketBadStatusException):
        member.websocket("/ws/rooms/%s/" % room)
    assert room not in member.get("/").text
    page = "/rooms/%s/" % room
    owner.post_form(page + "members/invite", {"username": name}, form_page=page)
    assert member.get(page).status == 200
    ws = member.websocket("/ws/rooms/%s/" % room)
    receive_until(ws, lambda f: f["type"] == "presence")
    owner.post_form(page + "members/remove", {"username": name}, form_page=page)
    started = time.time()
    ws.settimeout(5)
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        while True:
            ws.recv()
    assert time.time() - started < 1.0
    assert member.get(page).status == 403

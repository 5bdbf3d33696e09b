"""The chat's WebSocket consumers, driven through channels.test with the in-memory layer."""
import json
import time
from unittest import mock

import pytest
from channels.exceptions import DenyConnection
from channels.test import ChannelTestCase, WSClient
from django.contrib.auth.models import User

from chat.models import Message, Presence, Room

from .sockets import handshake_headers

ROOM = "/ws/rooms/lobby/"
ORIGIN = "http://127.0.0.1:8000"


class ConsumerTestCase(ChannelTestCase):
    def setUp(self):
        self.alice = User.objects.create_user("alice", password="pw-alice-123")
        self.client = self.connect(self.alice)

    def connect(self, user, path=ROOM, origin=ORIGIN):
        client = WSClient(ordered=True)
        headers = handshake_headers(user, origin)
        client.send_and_consume("websocket.connect", {"headers": headers}, path=path, check_accept=False)
        return client

    def say(self, client, frame, path=ROOM):
        text = frame if isinstance(frame, str) else json.dumps(frame)
        client.send_and_consume("websocket.receive", text=text, path=path)

    def frames(self, client):
        out = []
        while True:
            frame = client.receive()
            if frame is None:
                return out
            out.append(frame)


class ConnectTests(ConsumerTestCase):
    def test_logged_in_user_is_accepted(self):
        """A logged-in user with a same-site Origin is accepted into an existing room."""
        self.assertEqual(self.client.receive(json=False), {"accept": True})

    def test_anonymous_socket_is_refused(self):
        """A socket without a session is closed at the handshake."""
        client = self.connect(None)
        self.assertEqual(client.receive(json=False), {"close": True})

    def test_unknown_room_is_refused(self):
        """A room that does not exist is refused at the handshake."""
        client = self.connect(self.alice, path="/ws/rooms/nowhere/")
        self.assertEqual(client.receive(json=False), {"close": True})

    def test_foreign_origin_is_refused(self):
        """channels' allowed_hosts_only denies an Origin outside ALLOWED_HOSTS."""
        with pytest.raises(DenyConnection):
            self.connect(self.alice, origin="http://evil.example")

    def test_missing_origin_is_refused(self):
        """No Origin header at all is denied too."""
        with pytest.raises(DenyConnection):
            self.connect(self.alice, origin=None)


class MessageTests(ConsumerTestCase):
    def setUp(self):
        super(MessageTests, self).setUp()
        self.frames(self.client)  # the accept and alice's own join

    def test_message_is_stored_broadcast_and_acked(self):
        """A message is stored, broadcast to the room with its id, and acked to the sender."""
        self.say(self.client, {"type": "message", "text": "hello", "client_id": "c1"})
        frames = self.frames(self.client)
        stored = Message.objects.get()
        self.assertEqual(stored.text, "hello")
        broadcast = [f for f in frames if f["type"] == "message"]
        self.assertEqual(len(broadcast), 1)
        self.assertEqual(broadcast[0]["id"], stored.seq)
        self.assertEqual(broadcast[0]["user"], "alice")
        self.assertEqual(broadcast[0]["room"], "lobby")
        self.assertIn({"type": "ack", "client_id": "c1", "id": stored.seq}, frames)

    def test_resend_is_stored_once_with_the_same_ack(self):
        """A resend of a client_id stores nothing new and gets the same ack."""
        for _ in range(3):
            self.say(self.client, {"type": "message", "text": "once", "client_id": "same"})
        acks = [f for f in self.frames(self.client) if f["type"] == "ack"]
        self.assertEqual(Message.objects.count(), 1)
        self.assertEqual(len(acks), 3)
        self.assertEqual(len({a["id"] for a in acks}), 1)

    def test_a_consumer_that_raises_asks_for_the_message_at_once(self):
        """A message whose consumer raises (a bad release) is answered with server_error naming its
        client_id and retry_after_ms 0, the exception still reaches the worker (the canary's error
        count), and the resend, on a good worker, is stored and acked."""
        with mock.patch("chat.consumers._post", side_effect=RuntimeError("bad release")):
            with self.assertRaises(RuntimeError):
                self.say(self.client, {"type": "message", "text": "again", "client_id": "r1"})
        error = self.frames(self.client)
        self.assertEqual([(f["code"], f["client_id"], f["retry_after_ms"]) for f in error],
                         [("server_error", "r1", 0)])
        self.say(self.client, {"type": "message", "text": "again", "client_id": "r1"})
        self.assertIn({"type": "ack", "client_id": "r1", "id": 1}, self.frames(self.client))
        self.assertEqual(Message.objects.count(), 1)

    def test_ids_increase_per_room(self):
        """Each room numbers its messages 1, 2, 3... in the order they were stored."""
        Room.objects.create(slug="other", name="Other")
        other = self.connect(self.alice, path="/ws/rooms/other/")
        for n in range(3):
            self.say(self.client, {"type": "message", "text": "l%d" % n, "client_id": "l%d" % n})
            self.say(other, {"type": "message", "text": "o%d" % n, "client_id": "o%d" % n},
                     path="/ws/rooms/other/")
        for slug in ("lobby", "other"):
            seqs = list(Message.objects.filter(room__slug=slug).values_list("seq", flat=True))
            self.assertEqual(seqs, [1, 2, 3])

    def test_ids_without_returning(self):
        """On a database without UPDATE ... RETURNING the ids are the same gapless sequence."""
        with mock.patch("chat.models._has_returning", return_value=False):
            for n in range(3):
                self.say(self.client, {"type": "message", "text": "r%d" % n, "client_id": "r%d" % n})
        self.assertEqual(list(Message.objects.values_list("seq", flat=True)), [1, 2, 3])

    def test_new_message_goes_to_the_background_channel(self):
        """Spam scoring is handed to background.moderate, not done on the realtime path."""
        self.say(self.client, {"type": "message", "text": "hi", "client_id": "bg"})
        queued = self.get_next_message("background.moderate", require=True)
        self.assertEqual(queued.content["message_id"], Message.objects.get().pk)

    def test_ping_gets_pong(self):
        """A ping frame is answered with a pong."""
        self.say(self.client, {"type": "ping"})
        self.assertEqual(self.frames(self.client), [{"type": "pong"}])

    def test_disconnect_leaves_the_group(self):
        """After disconnect the socket no longer receives the room's broadcasts."""
        bob = User.objects.create_user("bob", password="pw-bob-12345")
        other = self.connect(bob)
        self.frames(other)
        self.frames(self.client)
        self.client.send_and_consume("websocket.disconnect", path=ROOM)
        self.say(other, {"type": "message", "text": "anyone?", "client_id": "b1"})
        self.assertEqual(self.frames(self.client), [])


class BadInputTests(ConsumerTestCase):
    """Every bad frame gets an error frame with a stable code, nothing is stored, the socket stays."""

    def setUp(self):
        super(BadInputTests, self).setUp()
        self.frames(self.client)

    def assert_error(self, text, code, client_id=None):
        self.say(self.client, text)
        frames = self.frames(self.client)
        self.assertEqual([f["type"] for f in frames], ["error"], frames)
        self.assertEqual(frames[0]["code"], code)
        self.assertTrue(frames[0]["detail"])
        self.assertEqual(frames[0].get("client_id"), client_id)
        self.assertEqual(Message.objects.count(), 0)
        # still usable
        self.say(self.client, {"type": "ping"})
        self.assertEqual(self.frames(self.client), [{"type": "pong"}])

    def test_not_json(self):
        """Text that is not JSON: invalid_json."""
        self.assert_error("hello there", "invalid_json")

    def test_not_an_object(self):
        """A JSON array or number: not_an_object."""
        self.assert_error("[1, 2]", "not_an_object")
        self.assert_error("42", "not_an_object")

    def test_unknown_type(self):
        """An unknown or missing type: unknown_type."""
        self.assert_error({"type": "shout", "text": "x"}, "unknown_type")
        self.assert_error({"text": "x"}, "unknown_type")

    def test_missing_empty_or_non_string_text(self):
        """text missing, blank or not a string: invalid_text."""
        for frame in ({"type": "message", "client_id": "a"},
                      {"type": "message", "text": "   ", "client_id": "a"},
                      {"type": "message", "text": 5, "client_id": "a"},
                      {"type": "message", "text": ["x"], "client_id": "a"}):
            self.assert_error(frame, "invalid_text", client_id="a")
        self.assert_error({"type": "message", "text": "", "client_id": ""}, "invalid_text")

    def test_text_over_the_limit(self):
        """text longer than CHAT_MESSAGE_MAX_LENGTH: text_too_long, naming the message."""
        self.assert_error({"type": "message", "text": "x" * 2001, "client_id": "a"}, "text_too_long",
                          client_id="a")

    def test_bad_client_id(self):
        """client_id missing, empty, not a string or too long: invalid_client_id."""
        for client_id in (None, "", 7, "x" * 65):
            frame = {"type": "message", "text": "hi"}
            if client_id is not None:
                frame["client_id"] = client_id
            self.assert_error(frame, "invalid_client_id")

    def test_oversize_frame(self):
        """A frame over 16 KiB is refused before parsing: frame_too_large."""
        self.assert_error(json.dumps({"type": "message", "text": "x" * 17000, "client_id": "a"}),
                          "frame_too_large")

    def test_deeply_nested_json(self):
        """Deep nesting is refused before json.loads can recurse: too_deep."""
        self.assert_error("[" * 5000 + "]" * 5000, "too_deep")

    def test_binary_frame(self):
        """A binary frame: binary_frame."""
        self.client.send_and_consume("websocket.receive", {"bytes": b"\x00\x01"}, path=ROOM)
        self.assertEqual(self.frames(self.client)[0]["code"], "binary_frame")


class PresenceTests(ConsumerTestCase):
    def test_join_and_leave_are_announced_with_the_online_list(self):
        """Others see a join and a leave, each with who is online now."""
        self.frames(self.client)
        bob = User.objects.create_user("bob", password="pw-bob-12345")
        other = self.connect(bob)
        joined = [f for f in self.frames(self.client) if f["type"] == "presence"]
        self.assertEqual(joined, [{"type": "presence", "event": "join", "user": "bob",
                                   "online": ["alice", "bob"], "online_more": False}])
        other.send_and_consume("websocket.disconnect", path=ROOM)
        left = [f for f in self.frames(self.client) if f["type"] == "presence"]
        self.assertEqual(left, [{"type": "presence", "event": "leave", "user": "bob",
                                 "online": ["alice"], "online_more": False}])

    def test_second_socket_of_a_user_is_not_a_new_join(self):
        """A user with two tabs joins once and leaves when the last tab closes."""
        self.frames(self.client)
        second = self.connect(self.alice)
        self.assertEqual([f for f in self.frames(self.client) if f["type"] == "presence"], [])
        second.send_and_consume("websocket.disconnect", path=ROOM)
        self.assertEqual([f for f in self.frames(self.client) if f["type"] == "presence"], [])

    def test_big_room_tells_only_the_joiner(self):
        """Past CHAT_PRESENCE_BROADCAST_MAX sockets a join is not broadcast (members² frames), but the
        joiner still learns who is online."""
        self.frames(self.client)
        bob = User.objects.create_user("bob", password="pw-bob-12345")
        with self.settings(CHAT_PRESENCE_BROADCAST_MAX=1):
            other = self.connect(bob)
        self.assertEqual([f for f in self.frames(self.client) if f["type"] == "presence"], [])
        self.assertEqual([f["online"] for f in self.frames(other) if f.get("type") == "presence"],
                         [["alice", "bob"]])

    def test_online_lists_each_user_once_however_many_sockets(self):
        """A user with several sockets is online once: the list is sorted and without duplicates."""
        self.connect(User.objects.create_user("bob", password="pw-bob-12345"))
        self.connect(self.alice)
        self.connect(self.alice)
        self.assertEqual(Presence.online(Room.objects.get(slug="lobby"), 10), (["alice", "bob"], False))

    def test_online_list_is_bounded_and_says_more_are_online(self):
        """Past CHAT_PRESENCE_ONLINE_MAX users the frame names the first ones (by account) and says
        others are online: a join reads that many users, not the whole room."""
        for name in ("carol", "bob"):
            self.connect(User.objects.create_user(name, password="pw-12345-" + name))
        lobby = Room.objects.get(slug="lobby")
        self.assertEqual(Presence.online(lobby, 2), (["alice", "carol"], True))
        self.assertEqual(Presence.online(lobby, 3), (["alice", "bob", "carol"], False))
        with self.settings(CHAT_PRESENCE_ONLINE_MAX=1):
            dave = self.connect(User.objects.create_user("dave", password="pw-12345-dave"))
        self.assertEqual([(f["online"], f["online_more"]) for f in self.frames(dave) if f.get("type") == "presence"],
                         [(["alice"], True)])

    def test_a_handshake_run_twice_keeps_one_row_per_socket(self):
        """Presence.open inserts a socket's row, and a redelivered handshake updates it (one row)."""
        lobby, bob = Room.objects.get(slug="lobby"), User.objects.create_user("bob", password="pw-bob-12345")
        Presence.open(lobby, self.alice, "daphne.response.x!1")
        Presence.open(lobby, bob, "daphne.response.x!1")
        self.assertEqual(list(Presence.objects.filter(reply_channel="daphne.response.x!1").values_list(
            "user__username", flat=True)), ["bob"])

    def test_crowded_counts_live_sockets_up_to_the_limit(self):
        """crowded(room, n) is whether more than n live sockets are open, however many users own them."""
        lobby = Room.objects.get(slug="lobby")
        self.connect(self.alice)
        self.assertEqual([Presence.crowded(lobby, n) for n in (0, 1, 2)], [True, True, False])


class FloodTests(ConsumerTestCase):
    def test_flood_is_refused_and_the_socket_recovers(self):
        """Past the per-socket burst, frames get rate_limited errors and store nothing; after a
        pause the socket works again."""
        self.frames(self.client)
        frames = []
        for n in range(30):
            self.say(self.client, {"type": "message", "text": "spam", "client_id": "f%d" % n})
            frames += self.frames(self.client)
        errors = [f for f in frames if f["type"] == "error"]
        self.assertEqual({f["code"] for f in errors}, {"rate_limited"})
        self.assertEqual(Message.objects.count(), 30 - len(errors))
        self.assertGreaterEqual(len(errors), 5)
        self.assertTrue(all(f["client_id"].startswith("f") and f["retry_after_ms"] > 0 for f in errors))
        with mock.patch("chat.ratelimit.time.time", return_value=time.time() + 60):
            self.say(self.client, {"type": "ping"})
        self.assertEqual(self.frames(self.client), [{"type": "pong"}])

    def test_a_client_that_resends_in_order_keeps_its_order(self):
        """A client keeping its unacked messages and, after each rate_limited, waiting retry_after_ms
        and resending the one the server waits for, then the rest in the order it first sent them,
        gets every message stored once, in that order, though tokens come back while refused ones
        wait."""
        self.frames(self.client)
        outbox = ["p%02d" % n for n in range(40)]
        clock = [time.time()]
        with mock.patch("chat.ratelimit.time.time", side_effect=lambda: clock[0]):
            for _ in range(200):
                if not outbox:
                    break
                wait = 0
                for client_id in list(outbox[:10]):  # at most 10 in flight, oldest first
                    self.say(self.client, {"type": "message", "text": client_id, "client_id": client_id})
                    clock[0] += 0.05
                    for frame in self.frames(self.client):
                        if frame["type"] == "ack" and frame["client_id"] in outbox:
                            outbox.remove(frame["client_id"])
                        elif frame["type"] == "error":
                            self.assertEqual(frame["code"], "rate_limited")
                            wait = max(wait, frame["retry_after_ms"])
                            first = frame.get("waiting_for", frame["client_id"])
                            if first in outbox:
                                outbox.remove(first)
                                outbox.insert(0, first)
                clock[0] += wait / 1000.0
        self.assertEqual(outbox, [])
        stored = list(Message.objects.order_by("seq").values_list("client_id", flat=True))
        self.assertEqual(stored, ["p%02d" % n for n in range(40)])

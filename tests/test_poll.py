"""Long-poll consumer: immediate answers, holding without a worker, release on a new message, expiry."""
import json

from channels.test import ChannelTestCase, Client, WSClient
from django.contrib.auth.models import User

from chat.models import Message, Room
from chat.poll import EXPIRE_CHANNEL

from .sockets import handshake_headers


class PollTests(ChannelTestCase):
    def setUp(self):
        self.user = User.objects.create_user("paul", password="pw-paul-1234")
        self.cookie = handshake_headers(self.user)[0][1]
        self.room = Room.objects.get(slug="lobby")

    def poll(self, query="after=0", cookie=True, path="/poll/rooms/lobby/"):
        client = Client()
        headers = [[b"cookie", self.cookie]] if cookie else []
        client.send_and_consume("http.request", {
            "method": "GET", "path": path, "query_string": query.encode(), "headers": headers,
            "http_version": "1.1"})
        return client

    def answer(self, client):
        reply = client.receive()
        return None if reply is None else (reply["status"], json.loads(reply["content"].decode()))

    def test_anonymous_poll_is_forbidden(self):
        """A long-poll without a session gets 403 and a JSON error."""
        status, body = self.answer(self.poll(cookie=False))
        self.assertEqual((status, body["code"]), (403, "login_required"))

    def test_bad_after_and_unknown_room(self):
        """A malformed `after` gets 400, an unknown room 404."""
        self.assertEqual(self.answer(self.poll("after=x"))[0], 400)
        self.assertEqual(self.answer(self.poll("after=-1"))[0], 400)
        self.assertEqual(self.answer(self.poll(path="/poll/rooms/nowhere/"))[0], 404)

    def test_answers_at_once_when_there_is_news(self):
        """Messages after `after` come back at once, oldest first."""
        for n in range(3):
            Message.post(self.room, self.user, "p%d" % n, "text %d" % n)
        status, body = self.answer(self.poll("after=1"))
        self.assertEqual(status, 200)
        self.assertEqual([m["id"] for m in body], [2, 3])

    def test_holds_then_a_new_message_releases_it(self):
        """With nothing new the request is held in the room's poll group (no answer, a delay timer
        set), and the next stored message answers it."""
        client = self.poll("after=0")
        self.assertIsNone(client.receive())
        timer = self.get_next_message("asgi.delay", require=True).content
        self.assertEqual(timer["channel"], EXPIRE_CHANNEL)
        self.assertEqual(timer["content"]["reply_channel"], client.reply_channel)
        sender = WSClient(ordered=True)
        sender.send_and_consume("websocket.connect", {
            "headers": handshake_headers(self.user, "http://localhost")}, path="/ws/rooms/lobby/")
        sender.send_and_consume("websocket.receive", text={"type": "message", "text": "news",
                                                           "client_id": "n1"}, path="/ws/rooms/lobby/")
        status, body = self.answer(client)
        self.assertEqual((status, [m["text"] for m in body]), (200, ["news"]))

    def test_expiry_answers_empty(self):
        """When the hold expires, the default pool's consumer answers []."""
        client = self.poll("after=0")
        timer = self.get_next_message("asgi.delay", require=True).content
        Client().send_and_consume(timer["channel"], timer["content"])
        self.assertEqual(self.answer(client), (200, []))

"""Frames of one socket run in daphne's order, and a frame lost with a dead worker does not block the rest."""
import json
import time
from unittest import mock

from channels.test import ChannelTestCase, WSClient
from django.contrib.auth.models import User

from chat.models import Message

from .sockets import handshake_headers

ROOM = "/ws/rooms/lobby/"


class OrderingTests(ChannelTestCase):
    def setUp(self):
        self.client = WSClient()
        headers = handshake_headers(User.objects.create_user("olga", password="pw-olga-1234"),
                                    "http://localhost")
        self.client.send_and_consume("websocket.connect", {"headers": headers, "order": 0}, path=ROOM)

    def send(self, order, text):
        self.client.send("websocket.receive", {"order": order, "text": json.dumps(
            {"type": "message", "text": text, "client_id": text})}, path=ROOM)

    def run_all(self):
        """Consume websocket.receive until nothing is left (parked frames come back through it)."""
        for _ in range(50):
            try:
                self.client.consume("websocket.receive")
            except AssertionError:  # channels.test's "No message for channel"
                return

    def stored(self):
        return list(Message.objects.order_by("seq").values_list("text", flat=True))

    def test_early_frame_waits_for_the_one_before(self):
        """Frame 2 consumed before frame 1 is parked and runs after it."""
        self.send(2, "second")
        self.client.consume("websocket.receive")
        self.assertEqual(self.stored(), [])
        self.send(1, "first")
        self.run_all()
        self.assertEqual(self.stored(), ["first", "second"])

    def skip_the_missing_first(self):
        """Frames 2 and 3 of a socket whose frame 1 never came: 2 is parked, 3 arrives past GAP_TIMEOUT."""
        self.send(2, "second")
        self.run_all()
        self.assertEqual(self.stored(), [])
        with mock.patch("chat.ordering.time.time", return_value=time.time() + 10):
            self.send(3, "third")
            self.run_all()

    def test_frame_lost_with_a_dead_worker_is_skipped(self):
        """When frame 1 never runs (its worker died), frame 2 runs once it has waited GAP_TIMEOUT."""
        self.skip_the_missing_first()
        self.assertEqual(self.stored(), ["second", "third"])

    def test_frame_released_by_a_skip_still_runs(self):
        """A frame older than the next expected order (arriving after a skip) is handled, not dropped."""
        self.skip_the_missing_first()
        self.send(1, "late first")
        self.run_all()
        self.assertEqual(self.stored(), ["second", "third", "late first"])

    def test_frame_whose_consumer_raised_does_not_block_the_next(self):
        """A frame whose consumer raised counts as consumed: the next frame runs, not parked."""
        with mock.patch("chat.consumers._post", side_effect=RuntimeError("bad release")):
            self.send(1, "first")
            with self.assertRaises(RuntimeError):
                self.client.consume("websocket.receive")
        self.send(2, "second")
        self.run_all()
        self.assertEqual(self.stored(), ["second"])

    def test_frame_finding_its_wait_channel_full_is_dropped(self):
        """An early frame whose socket's wait channel is full is dropped with one warning (its client
        resends it), not raised as a traceback; the frames after it still run."""
        layer = self.client.channel_layer
        real_send = layer.send

        def send(channel, message):
            if channel.startswith("__wait__"):
                raise layer.ChannelFull()
            return real_send(channel, message)

        with mock.patch.object(layer, "send", side_effect=send), self.assertLogs("chat.ordering", "WARNING") as logs:
            self.send(2, "second")
            self.client.consume("websocket.receive")
        self.assertIn("frame 2 dropped", logs.output[0])
        self.send(1, "first")
        self.run_all()
        self.assertEqual(self.stored(), ["first"])

"""Edits and deletes over the WebSocket: entries of the stream, exactly once, refused with a code."""
from django.contrib.auth.models import User

from chat.models import Message

from .test_consumers import ConsumerTestCase


class EditTests(ConsumerTestCase):
    def setUp(self):
        super(EditTests, self).setUp()
        self.frames(self.client)
        self.say(self.client, {"type": "message", "text": "helo", "client_id": "m1"})
        self.frames(self.client)

    def change(self, frame, client=None):
        client = client or self.client
        self.say(client, frame)
        return self.frames(client)

    def test_edit_keeps_the_id_and_is_broadcast(self):
        """An edit is a new entry (its own seq) naming the message's id; the row holds the new text."""
        out = self.change({"type": "edit", "id": 1, "text": "hello", "client_id": "e1"})
        edit = [f for f in out if f.get("type") == "edit"][0]
        self.assertEqual((edit["id"], edit["seq"], edit["text"]), (1, 2, "hello"))
        self.assertIn({"type": "ack", "client_id": "e1", "id": 2}, out)
        message = Message.objects.get(seq=1)
        self.assertEqual((message.text, message.rev), ("hello", 2))
        self.assertIsNotNone(message.edited)

    def test_edit_resend_changes_nothing_more(self):
        """A resent edit (same client_id) after a later edit is acked again and does not undo it."""
        self.change({"type": "edit", "id": 1, "text": "first", "client_id": "e1"})
        self.change({"type": "edit", "id": 1, "text": "second", "client_id": "e2"})
        out = self.change({"type": "edit", "id": 1, "text": "first", "client_id": "e1"})
        self.assertIn({"type": "ack", "client_id": "e1", "id": 2}, out)
        self.assertEqual(Message.objects.get(seq=1).text, "second")
        self.assertEqual(Message.objects.count(), 3)

    def test_delete_removes_the_text_everywhere(self):
        """A delete keeps the row, flags it and blanks its text and its edits' texts."""
        self.change({"type": "edit", "id": 1, "text": "secret", "client_id": "e1"})
        out = self.change({"type": "delete", "id": 1, "client_id": "d1"})
        self.assertIn({"type": "ack", "client_id": "d1", "id": 3}, out)
        message = Message.objects.get(seq=1)
        self.assertEqual((message.deleted, message.text), (True, ""))
        self.assertFalse(Message.objects.filter(text__contains="secret").exists())
        self.assertEqual(message.as_frame()["text"], "")

    def test_delete_resend_is_acked_a_second_delete_refused(self):
        """Resending a delete acks it again; another delete of the deleted message is message_deleted."""
        self.change({"type": "delete", "id": 1, "client_id": "d1"})
        self.assertIn({"type": "ack", "client_id": "d1", "id": 2},
                      self.change({"type": "delete", "id": 1, "client_id": "d1"}))
        error = self.change({"type": "delete", "id": 1, "client_id": "d2"})[-1]
        self.assertEqual((error["code"], error["client_id"]), ("message_deleted", "d2"))
        self.assertEqual(Message.objects.count(), 2)

    def test_changing_anothers_message_is_refused(self):
        """Editing or deleting another user's message is not_yours, and changes nothing."""
        bob = User.objects.create_user("bob", password="pw-bob-1234")
        client = self.connect(bob)
        self.frames(client)
        for frame in ({"type": "edit", "id": 1, "text": "mine", "client_id": "b1"},
                      {"type": "delete", "id": 1, "client_id": "b2"}):
            self.assertEqual(self.change(frame, client)[-1]["code"], "not_yours")
        self.assertEqual((Message.objects.get(seq=1).text, Message.objects.count()), ("helo", 1))

    def test_staff_may_delete_any_message(self):
        """Staff delete anyone's message."""
        User.objects.create_user("root", password="pw-root-1234", is_staff=True)
        client = self.connect(User.objects.get(username="root"))
        self.frames(client)
        self.assertEqual(self.change({"type": "delete", "id": 1, "client_id": "r1"}, client)[-1]["type"], "ack")
        self.assertTrue(Message.objects.get(seq=1).deleted)

    def test_unknown_or_malformed_id(self):
        """An id naming no message is unknown_message; a non-integer or huge one invalid_id."""
        self.assertEqual(self.change({"type": "edit", "id": 9, "text": "x", "client_id": "e9"})[-1]["code"],
                         "unknown_message")
        for bad in ("x", -1, 2 ** 40, True, None):
            self.assertEqual(self.change({"type": "delete", "id": bad, "client_id": "d9"})[-1]["code"],
                             "invalid_id", bad)
        self.assertEqual(Message.objects.count(), 1)
        self.assertEqual(Message.objects.get(seq=1).room.last_seq, 1)  # no id taken by a refusal

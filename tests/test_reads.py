"""Read marks and unread counts: stored, never moved back, shared by a user's sockets."""
from django.contrib.auth.models import User

from chat import reads
from chat.models import Message, Room

from .test_consumers import ConsumerTestCase


class ReadTests(ConsumerTestCase):
    def setUp(self):
        super(ReadTests, self).setUp()
        self.bob = User.objects.create_user("bob", password="pw-bob-1234")
        self.room = Room.objects.get(slug="lobby")
        for n in range(3):
            Message.post(self.room, self.alice, "m%d" % n, "hi %d" % n)
        self.room.refresh_from_db()

    def test_unread_counts_others_messages_past_the_mark(self):
        """Three messages of alice are unread for bob, none for alice; a mark lowers the count."""
        self.assertEqual(reads.count(self.bob, self.room), 3)
        self.assertEqual(reads.count(self.alice, self.room), 0)
        reads.mark(self.bob, self.room, 2)
        self.assertEqual(reads.count(self.bob, self.room), 1)

    def test_mark_never_moves_back_nor_past_the_end(self):
        """A late, lower mark is ignored; a mark past the room's last id stops there."""
        self.assertEqual(reads.mark(self.bob, self.room, 3), 3)
        self.assertEqual(reads.mark(self.bob, self.room, 1), 3)
        Message.post(self.room, self.alice, "m9", "later")
        self.assertEqual(reads.mark(self.bob, self.room, 10 ** 6), 4)

    def test_deleted_messages_are_not_unread(self):
        """A deleted message does not count."""
        Message.objects.filter(seq=1).update(deleted=True)
        self.assertEqual(reads.count(self.bob, self.room), 2)

    def test_read_frame_is_told_to_every_socket_of_the_user(self):
        """A read frame on one socket reaches the user's other socket as a read frame with the count."""
        first, second = self.connect(self.bob), self.connect(self.bob)
        self.frames(first), self.frames(second)
        self.say(first, {"type": "read", "id": 3})
        told = [f for f in self.frames(second) if f.get("type") == "read"]
        self.assertEqual(told, [{"type": "read", "room": "lobby", "id": 3, "unread": 0}])

    def test_bad_read_id(self):
        """A read frame without a valid id is invalid_id and stores nothing."""
        self.frames(self.client)
        self.say(self.client, {"type": "read", "id": "x"})
        self.assertEqual(self.frames(self.client)[-1]["code"], "invalid_id")
        self.assertEqual(reads.count(self.alice, self.room), 0)


class RoomListCountTests(ConsumerTestCase):
    def test_room_list_shows_unread_counts(self):
        """The room list carries each room's unread count for the user; a read mark lowers it."""
        from django.test import Client
        bob = User.objects.create_user("bob", password="pw-bob-1234")
        room = Room.objects.get(slug="lobby")
        for n in range(2):
            Message.post(room, self.alice, "c%d" % n, "hi %d" % n)
        page = Client()
        page.force_login(bob)
        self.assertContains(page.get("/"), 'data-room="lobby" data-unread="2"')
        room.refresh_from_db()
        reads.mark(bob, room, 2)
        self.assertContains(page.get("/"), 'data-room="lobby" data-unread="0"')

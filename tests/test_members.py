"""Private rooms: members only, on every path; removal closes the member's sockets."""
from urllib.parse import urlencode

from django.contrib.auth.models import User
from django.test import Client, TestCase

from chat import members
from chat.exceptions import ClientError
from chat.models import Membership, Presence, Room

from .test_consumers import ConsumerTestCase


class PrivateRoomSocketTests(ConsumerTestCase):
    def setUp(self):
        super(PrivateRoomSocketTests, self).setUp()
        self.bob = User.objects.create_user("bob", password="pw-bob-1234")
        self.room = Room.objects.create(slug="secret", name="Secret", private=True, owner=self.alice)
        Membership.objects.create(room=self.room, user=self.alice)

    def test_non_member_socket_is_refused(self):
        """A logged-in non-member is refused at the handshake; a member, staff too, is accepted."""
        self.assertEqual(self.connect(self.bob, path="/ws/rooms/secret/").receive(json=False), {"close": True})
        self.assertEqual(self.connect(self.alice, path="/ws/rooms/secret/").receive(json=False), {"accept": True})
        root = User.objects.create_user("root", password="pw-root-1234", is_staff=True)
        self.assertEqual(self.connect(root, path="/ws/rooms/secret/").receive(json=False), {"accept": True})

    def test_removed_member_sockets_are_closed(self):
        """Removing a member sends close to each of their sockets in the room."""
        members.invite(self.room, "bob")
        client = self.connect(self.bob, path="/ws/rooms/secret/")
        self.frames(client)
        self.assertEqual(Presence.objects.filter(user=self.bob).count(), 1)
        members.remove(self.room, "bob")
        self.assertEqual(client.receive(json=False), {"close": True})
        self.assertFalse(self.room.admits(self.bob))

    def test_member_errors(self):
        """Unknown users, non-members and the owner get a code and change nothing."""
        for action, name, code in ((members.invite, "nobody", "unknown_user"),
                                   (members.remove, "bob", "not_a_member"),
                                   (members.remove, "alice", "owner_stays")):
            with self.assertRaises(ClientError) as refused:
                action(self.room, name)
            self.assertEqual(refused.exception.code, code)
        self.assertEqual(list(self.room.memberships.values_list("user__username", flat=True)), ["alice"])


class FormClient(Client):
    """Posts forms as browsers do (urlencoded): the site refuses multipart bodies."""
    def post(self, path, data=None, **extra):
        return super(FormClient, self).post(path, urlencode(data or {}),
                                            content_type="application/x-www-form-urlencoded", **extra)


class PrivateRoomPageTests(TestCase):
    def setUp(self):
        self.alice = User.objects.create_user("alice", password="pw-alice-123")
        self.bob = User.objects.create_user("bob", password="pw-bob-1234")
        self.owner, self.other = FormClient(), FormClient()
        self.owner.force_login(self.alice)
        self.other.force_login(self.bob)
        self.owner.post("/rooms/", {"name": "Secret", "private": "on"})
        self.room = Room.objects.get(slug="secret")

    def test_creator_owns_and_joins_the_private_room(self):
        """A room created private is owned by its creator, who is its first member."""
        self.assertTrue(self.room.private)
        self.assertTrue(self.room.admits(self.alice))
        self.assertNotContains(self.other.get("/"), "Secret")
        self.assertContains(self.owner.get("/"), "Secret")

    def test_non_member_is_refused_everywhere(self):
        """Page 403, history and send 403 not_a_member, for a logged-in non-member."""
        self.assertEqual(self.other.get("/rooms/secret/").status_code, 403)
        history = self.other.get("/rooms/secret/messages?after=0")
        self.assertEqual((history.status_code, history.json()["code"]), (403, "not_a_member"))
        self.assertEqual(self.other.post("/rooms/secret/messages", {"text": "x", "client_id": "c"}).status_code, 403)

    def test_invite_then_remove(self):
        """The owner invites bob (who may then read), then removes him; others may not manage."""
        self.assertEqual(self.other.post("/rooms/secret/members/invite", {"username": "bob"}).status_code, 403)
        self.owner.post("/rooms/secret/members/invite", {"username": "bob"})
        self.assertEqual(self.other.get("/rooms/secret/").status_code, 200)
        self.owner.post("/rooms/secret/members/remove", {"username": "bob"})
        self.assertEqual(self.other.get("/rooms/secret/").status_code, 403)

    def test_invite_unknown_user_says_so(self):
        """Inviting an unknown username redirects back with the reason, nothing added."""
        response = self.owner.post("/rooms/secret/members/invite", {"username": "nobody"}, follow=True)
        self.assertContains(response, "there is no user")
        self.assertEqual(self.room.memberships.count(), 1)

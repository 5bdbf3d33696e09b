"""Notifications of mentions: the job the realtime pool queues, the background consumer, the pages
and the nav's count."""
import json
from unittest import mock
from urllib.parse import urlencode

from channels import Group
from channels.test import ChannelTestCase, Client
from django.contrib.auth.models import AnonymousUser, User
from django.test import Client as PageClient, RequestFactory

from chat import delivery, edits
from chat.models import Membership, Message, Room
from chat.sockets import user_group
from notifications.context_processors import unread
from notifications.models import Notification

BOB_SOCKET = "test.socket.bob"


class NotifyTestCase(ChannelTestCase):
    def setUp(self):
        self.alice = User.objects.create_user("alice", password="pw-alice-123")
        self.bob = User.objects.create_user("bob", password="pw-bob-12345")
        self.lobby = Room.objects.get(slug="lobby")
        Group(user_group(self.bob.pk)).add(BOB_SOCKET)  # one open socket of bob's, in any room
        self.channels = Client()

    def post(self, text, client_id="c1", user=None):
        """Store a message as the realtime pool does and queue its sends; returns it."""
        stored, created = Message.post(self.lobby, user or self.alice, client_id, text)
        delivery.deliver(self.lobby, stored, created)
        return stored

    def run_jobs(self):
        """Consume the queued notify jobs, if any (the first takes those behind it)."""
        self.channels.consume(delivery.NOTIFY_CHANNEL, fail_on_none=False)
        assert self.get_next_message(delivery.NOTIFY_CHANNEL) is None

    def frames(self, channel=BOB_SOCKET):
        out = []
        while True:
            message = self.get_next_message(channel)
            if message is None:
                return out
            out.append(json.loads(message["text"]))


class JobTests(NotifyTestCase):
    def test_only_new_messages_with_an_at_sign_queue_a_job(self):
        """A message without "@" queues no job; one with it queues one carrying what the frames need;
        a resend of a stored message queues none (its notifications exist)."""
        self.post("hello", "c0")
        assert self.get_next_message(delivery.NOTIFY_CHANNEL) is None
        stored = self.post("hi @bob", "c1")
        job = self.get_next_message(delivery.NOTIFY_CHANNEL, require=True).content
        assert job == delivery.notify_job(stored)
        assert job == {"message_id": stored.pk, "seq": stored.seq, "room_id": self.lobby.pk, "room": "lobby",
                       "user_id": self.alice.pk, "user": "alice", "text": "hi @bob"}
        self.post("hi @bob", "c1")
        assert self.get_next_message(delivery.NOTIFY_CHANNEL) is None


class ConsumerTests(NotifyTestCase):
    def test_mention_notifies_every_socket_of_the_user(self):
        """@bob makes one notification for bob and sends his sockets the frame, with his unread count."""
        stored = self.post("hi @bob and @nobody and @alice" + "x" * 300)
        self.run_jobs()
        notification = Notification.objects.get()
        assert (notification.user, notification.message, notification.room, notification.read) == (
            self.bob, stored, self.lobby, None)
        assert self.frames() == [{"type": "notification", "id": notification.pk, "room": "lobby",
                                  "message_id": stored.seq, "from": "alice", "text": stored.text[:200],
                                  "unread": 1}]

    def test_job_run_twice_notifies_once(self):
        """The same job run again (a worker killed mid-job, a redelivery) makes no second
        notification; its frame goes again with the same id."""
        stored = self.post("@bob look")
        job = self.get_next_message(delivery.NOTIFY_CHANNEL, require=True).content
        self.channels.send_and_consume(delivery.NOTIFY_CHANNEL, job)
        self.channels.send_and_consume(delivery.NOTIFY_CHANNEL, dict(job))
        assert Notification.objects.filter(message=stored).count() == 1
        first, second = self.frames()
        assert first == second and first["unread"] == 1

    def test_concurrent_run_that_lost_the_insert_race(self):
        """A run whose bulk insert collides with another run's rows goes one by one and keeps one."""
        stored = self.post("@bob race")
        other = Notification(user=self.bob, message=stored, room=self.lobby)
        real = Notification._existing
        calls = []

        def stale(wanted):  # the first look misses the row the other worker inserts right after
            calls.append(1)
            if len(calls) == 1:
                found = real(wanted)
                other.save()
                return found
            return real(wanted)
        with mock.patch.object(Notification, "_existing", side_effect=stale):
            made = Notification.record([(self.bob.pk, stored.pk, self.lobby.pk)])
        assert made == {(self.bob.pk, stored.pk): (other.pk, None)}
        assert Notification.objects.count() == 1

    def test_a_batch_of_jobs(self):
        """Jobs queued behind the consumed one are handled with it, each user's frame counting all
        of their unread notifications; a job naming only its message reads the rest."""
        carol = User.objects.create_user("carol", password="pw-carol-123")
        first = self.post("@bob one", "b1")
        second = self.post("@bob @carol two", "b2", user=carol)
        for job in [self.get_next_message(delivery.NOTIFY_CHANNEL, require=True).content for _ in range(2)]:
            self.channels.send(delivery.NOTIFY_CHANNEL, job)
        third, _ = Message.post(self.lobby, self.alice, "b3", "@carol three")
        self.channels.send(delivery.NOTIFY_CHANNEL, {"message_id": third.pk})
        self.channels.consume(delivery.NOTIFY_CHANNEL)
        assert self.get_next_message(delivery.NOTIFY_CHANNEL) is None  # all three taken at once
        assert sorted(Notification.objects.values_list("user__username", "message__seq")) == [
            ("bob", first.seq), ("bob", second.seq), ("carol", third.seq)]
        assert [(f["message_id"], f["from"], f["unread"]) for f in self.frames()] == [
            (first.seq, "alice", 2), (second.seq, "carol", 2)]

    def test_private_room_mention_leaks_nothing(self):
        """A user the room does not admit (a private room they are not a member of) gets no
        notification and no frame."""
        stored = self.post("@bob secret plans")
        with mock.patch.object(Room, "admits", autospec=True, side_effect=lambda room, user: user.pk != self.bob.pk):
            self.run_jobs()
        assert not Notification.objects.filter(message=stored).exists()
        assert self.frames() == []

    def test_private_room_notifies_its_members_only(self):
        """In a private room (Room.admits), @member notifies and @outsider does not."""
        carol = User.objects.create_user("carol", password="pw-carol-123")
        secret = Room.objects.create(slug="secret", name="Secret", private=True, owner=self.alice)
        Membership.objects.create(room=secret, user=self.alice)
        Membership.objects.create(room=secret, user=carol)
        stored, created = Message.post(secret, self.alice, "p1", "@bob @carol plans")
        delivery.deliver(secret, stored, created)
        self.run_jobs()
        assert list(Notification.objects.values_list("user__username", flat=True)) == ["carol"]
        assert self.frames() == []

    def test_edits_queue_no_job(self):
        """An edit that adds a mention notifies nobody (the message's mentions were its own)."""
        stored = self.post("hello", "e1")
        entry, created = edits.change(self.lobby, self.alice, "e2", "edit", stored.seq, "hello @bob")
        delivery.deliver(self.lobby, entry, created)
        assert self.get_next_message(delivery.NOTIFY_CHANNEL) is None

    def test_read_notifications_are_not_sent_again(self):
        """A job run again after its notification was read sends nothing."""
        self.post("@bob x")
        job = self.get_next_message(delivery.NOTIFY_CHANNEL, require=True).content
        self.channels.send_and_consume(delivery.NOTIFY_CHANNEL, job)
        self.frames()
        Notification.objects.update(read="2026-01-01T00:00:00Z")
        self.channels.send_and_consume(delivery.NOTIFY_CHANNEL, job)
        assert self.frames() == []


class PageTests(NotifyTestCase):
    def setUp(self):
        super(PageTests, self).setUp()
        self.page = PageClient()
        self.page.force_login(self.bob)

    def form(self, page, path, fields=None):
        """POST form fields as a browser does (urlencoded: the site refuses multipart bodies)."""
        return page.post(path, urlencode(fields or {}), content_type="application/x-www-form-urlencoded")

    def mention(self, text, client_id):
        stored = self.post(text, client_id)
        self.run_jobs()
        return stored

    def test_offline_user_sees_it_on_the_next_page_load(self):
        """A user with no socket open finds the count in the nav of any page (the context processor)."""
        Group(user_group(self.bob.pk)).discard(BOB_SOCKET)
        self.mention("@bob while you were out", "o1")
        html = self.page.get("/").content.decode()
        assert 'id="notifications"' in html and 'data-unread="1"' in html

    def test_context_processor_counts_with_one_query_for_users_only(self):
        """notifications_unread costs one COUNT for a logged-in user and nothing for anonymous ones."""
        self.mention("@bob a", "q1")
        self.mention("@bob b", "q2")
        request = RequestFactory().get("/")
        request.user = self.bob
        with self.assertNumQueries(1):
            count = unread(request)["notifications_unread"]
            assert str(count) == "2" and count == 2
        request.user = AnonymousUser()
        with self.assertNumQueries(0):
            assert unread(request) == {}

    def test_list_newest_first_with_state_and_links(self):
        """The page lists the user's notifications newest first, unread marked, each linking to the
        message in its room through /notifications/<id>/, which marks it read."""
        first = self.mention("@bob first", "l1")
        second = self.mention("@bob second", "l2")
        html = self.page.get("/notifications/").content.decode()
        ids = list(Notification.objects.order_by("-pk").values_list("pk", flat=True))
        assert html.index('data-id="%d"' % ids[0]) < html.index('data-id="%d"' % ids[1])
        assert html.count('data-state="unread"') == 2
        assert 'data-room-url="/rooms/lobby/#m%d"' % first.seq in html
        opened = self.page.get("/notifications/%d/" % ids[1])
        assert opened.status_code == 302 and opened["Location"] == "/rooms/lobby/#m%d" % first.seq
        assert Notification.objects.get(pk=ids[1]).read is not None
        assert Notification.objects.get(pk=ids[0]).read is None
        assert second.seq > first.seq

    def test_page_hides_text_of_rooms_no_longer_readable_and_deleted_messages(self):
        """A member removed from a private room sees the notification without the room's text; a
        deleted message shows as deleted."""
        secret = Room.objects.create(slug="secret", name="Secret", private=True, owner=self.alice)
        Membership.objects.create(room=secret, user=self.bob)
        stored, created = Message.post(secret, self.alice, "h1", "@bob the code is 1234")
        delivery.deliver(secret, stored, created)
        gone = self.mention("@bob soon gone", "h2")
        self.run_jobs()
        entry, created = edits.change(self.lobby, self.alice, "h3", "delete", gone.seq)
        Membership.objects.filter(room=secret, user=self.bob).delete()
        html = self.page.get("/notifications/").content.decode()
        assert html.count('class="notification ') == 2
        assert "1234" not in html and "(you can no longer read this room)" in html
        assert "soon gone" not in html and "(deleted)" in html

    def test_other_users_notifications_are_not_found(self):
        """Another user's notification (or none) is a 404 and stays unread."""
        self.mention("@bob mine", "n1")
        notification = Notification.objects.get()
        other = PageClient()
        other.force_login(self.alice)
        assert other.get("/notifications/%d/" % notification.pk).status_code == 404
        assert Notification.objects.get().read is None
        assert self.page.get("/notifications/999999/").status_code == 404

    def test_mark_all_read_up_to_what_the_page_showed(self):
        """"Mark all read" marks the notifications up to the newest the page showed; one arriving
        later stays unread; without up_to every one is marked."""
        self.mention("@bob one", "m1")
        shown = Notification.objects.get().pk
        self.mention("@bob two", "m2")
        resp = self.form(self.page, "/notifications/read", {"up_to": str(shown)})
        assert resp.status_code == 302 and resp["Location"] == "/notifications/"
        assert list(Notification.objects.order_by("pk").values_list("read", flat=True))[1] is None
        assert Notification.objects.filter(read__isnull=True).count() == 1
        self.form(self.page, "/notifications/read")
        assert Notification.objects.filter(read__isnull=True).count() == 0

    def test_mark_all_read_errors(self):
        """A bad up_to is refused with its code; the POST needs the CSRF token; the pages need a login."""
        resp = self.form(self.page, "/notifications/read", {"up_to": "²"})
        assert resp.status_code == 400 and resp.json()["code"] == "invalid_up_to"
        strict = PageClient(enforce_csrf_checks=True)
        strict.force_login(self.bob)
        assert self.form(strict, "/notifications/read").status_code == 403
        anonymous = PageClient()
        assert anonymous.get("/notifications/").status_code == 302
        assert self.form(anonymous, "/notifications/read").status_code == 302

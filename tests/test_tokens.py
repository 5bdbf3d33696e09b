"""Personal API tokens: issue and hashing, parsing, each error code, expiry, revocation, the pages,
the token's WebSocket handshake and the HTTP sends' rate limit."""
import datetime
import hashlib
from urllib.parse import urlencode

from channels import Channel, Group
from channels.test import ChannelTestCase, WSClient
from django.contrib.auth.models import User
from django.test import Client, TestCase, override_settings
from django.utils import timezone

from chat.exceptions import ClientError
from chat.models import Message
from tokens import auth, httplimit
from tokens.models import ApiToken, SendBucket

from .sockets import handshake_headers

ORIGIN = "http://127.0.0.1:8000"
MESSAGES = "/rooms/lobby/messages"


def post(client, path, fields=None, **extra):
    """A form POST as a browser sends it (urlencoded: the site refuses multipart)."""
    return client.post(path, urlencode(fields or {}), content_type="application/x-www-form-urlencoded", **extra)


def code_of(call, *args):
    """The ClientError code a call raises."""
    try:
        call(*args)
    except ClientError as error:
        return error.code
    raise AssertionError("no ClientError")


class IssueTests(TestCase):
    def setUp(self):
        self.alice = User.objects.create_user("alice", password="pw-alice-123")

    def test_token_is_shown_once_and_stored_hashed(self):
        """issue() returns a chat_ token of 256 random bits; the row holds its SHA-256 and a short
        prefix, never the token."""
        row, token = ApiToken.issue(self.alice, "bot")
        self.assertRegex(token, auth.FORMAT)
        self.assertEqual(row.hash, hashlib.sha256(token.encode()).hexdigest())
        self.assertEqual(row.prefix, token[:11])
        stored = ApiToken.objects.filter(pk=row.pk).values()[0]
        self.assertNotIn(token, [str(value) for value in stored.values()])
        self.assertNotEqual(token, ApiToken.issue(self.alice, "bot")[1])

    def test_group_names_the_token(self):
        """The group of a token's sockets is token-<pk>."""
        row, _ = ApiToken.issue(self.alice, "bot")
        self.assertEqual(row.group, "token-%d" % row.pk)

    def test_expiry_in_days(self):
        """expires_in_days sets an expiry that many days ahead; none by default."""
        row, _ = ApiToken.issue(self.alice, "bot", expires_in_days=2)
        self.assertAlmostEqual((row.expires - timezone.now()).total_seconds(), 2 * 86400, delta=60)
        self.assertIsNone(ApiToken.issue(self.alice, "bot")[0].expires)


class LookupTests(TestCase):
    def setUp(self):
        self.alice = User.objects.create_user("alice", password="pw-alice-123")
        self.row, self.token = ApiToken.issue(self.alice, "bot")

    def test_bearer_header_parsing(self):
        """Only the Bearer scheme (any case) carries a token; another scheme is not ours."""
        self.assertEqual(auth.bearer("Bearer abc"), "abc")
        self.assertEqual(auth.bearer("bearer  abc "), "abc")
        self.assertEqual(auth.bearer("Bearer"), "")
        self.assertIsNone(auth.bearer("Basic YTpi"))
        self.assertIsNone(auth.bearer(None))

    def test_good_token_names_its_row(self):
        """A live token finds its row and user."""
        self.assertEqual(auth.lookup(self.token), self.row)
        self.assertEqual(auth.lookup(self.token).user, self.alice)

    def test_each_bad_token_has_its_code(self):
        """Malformed, unknown, revoked, expired and disabled-account tokens are told apart by code."""
        for bad in ("", "chat_short", self.token + "x", "tok_" + self.token[5:], self.token[:-1] + "!"):
            self.assertEqual(code_of(auth.lookup, bad), "token_malformed", bad)
        self.assertEqual(code_of(auth.lookup, "chat_" + "A" * 43), "token_unknown")
        expired, token = ApiToken.issue(self.alice, "old", expires_in_days=1)
        self.assertEqual(code_of(auth.lookup, token, timezone.now() + datetime.timedelta(days=1)), "token_expired")
        auth.revoke(self.row)
        self.assertEqual(code_of(auth.lookup, self.token), "token_revoked")
        self.alice.is_active = False
        self.alice.save()
        self.assertEqual(code_of(auth.lookup, ApiToken.issue(self.alice, "x")[1]), "token_revoked")

    def test_last_used_is_written_at_most_once_a_minute(self):
        """A use records last_used; another within the minute writes nothing."""
        now = timezone.now()
        auth.lookup(self.token, now)
        self.assertEqual(ApiToken.objects.get().last_used, now)
        with self.assertNumQueries(1):  # the lookup only
            auth.lookup(self.token, now + datetime.timedelta(seconds=59))
        auth.lookup(self.token, now + datetime.timedelta(seconds=61))
        self.assertEqual(ApiToken.objects.get().last_used, now + datetime.timedelta(seconds=61))

    def test_handshake_takes_header_or_query(self):
        """A handshake's token comes from its Authorization header or ?token=; neither: None;
        two tokens in the query: malformed."""
        def message(headers=(), query=b""):
            return type("Message", (), {"content": {"headers": list(headers), "query_string": query}})
        header = [[b"authorization", ("Bearer " + self.token).encode()]]
        self.assertEqual(auth.token_from_handshake(message(header)), self.row)
        self.assertEqual(auth.token_from_handshake(message(query=("token=" + self.token).encode())), self.row)
        self.assertEqual(auth.token_from_handshake(message(query="a=1&token=" + self.token)), self.row)
        self.assertIsNone(auth.token_from_handshake(message([[b"authorization", b"Basic YTpi"]], b"a=1")))
        self.assertEqual(code_of(auth.token_from_handshake, message(query=b"token=")), "token_malformed")
        self.assertEqual(code_of(auth.token_from_handshake, message(
            query=("token=%s&token=%s" % (self.token, self.token)).encode())), "token_malformed")


class HttpTests(TestCase):
    def setUp(self):
        self.alice = User.objects.create_user("alice", password="pw-alice-123")
        self.row, self.token = ApiToken.issue(self.alice, "bot")
        # Enforcing CSRF as the deployment does: a token request must pass without it.
        self.client = Client(enforce_csrf_checks=True)

    def bearer(self, token=None):
        return {"HTTP_AUTHORIZATION": "Bearer " + (token or self.token)}

    def test_token_reads_and_sends(self):
        """GET history and POST a message with a Bearer token, no cookie and no CSRF token."""
        sent = post(self.client, MESSAGES, {"text": "hi", "client_id": "t1"}, **self.bearer())
        self.assertEqual(sent.status_code, 200, sent.content)
        self.assertEqual(sent.json()["type"], "ack")
        self.assertEqual(Message.objects.get(client_id="t1").user, self.alice)
        history = self.client.get(MESSAGES + "?after=0", **self.bearer())
        self.assertEqual([m["client_id"] for m in history.json()], ["t1"])

    def test_bad_tokens_get_401_with_their_code(self):
        """Each bad token is answered 401 with its code, and nothing is stored."""
        expired, token = ApiToken.issue(self.alice, "old")
        ApiToken.objects.filter(pk=expired.pk).update(expires=timezone.now())
        revoked, revoked_token = ApiToken.issue(self.alice, "gone")
        auth.revoke(revoked)
        for bad, code in (("chat_nope", "token_malformed"), ("chat_" + "A" * 43, "token_unknown"),
                          (revoked_token, "token_revoked"), (token, "token_expired")):
            for response in (self.client.get(MESSAGES, **self.bearer(bad)),
                             post(self.client, MESSAGES, {"text": "x", "client_id": code}, **self.bearer(bad))):
                self.assertEqual(response.status_code, 401)
                self.assertEqual(response.json()["code"], code)
                self.assertEqual(response["WWW-Authenticate"], 'Bearer error="invalid_token"')
        self.assertFalse(Message.objects.exists())

    def test_query_token_is_for_handshakes_only(self):
        """?token= on HTTP is refused with token_malformed (it belongs in the header)."""
        response = self.client.get(MESSAGES + "?token=" + self.token)
        self.assertEqual((response.status_code, response.json()["code"]), (401, "token_malformed"))

    def test_sessions_still_need_login_and_csrf(self):
        """Without a token the endpoint is what it was: a login redirect, and CSRF on a session's POST."""
        self.assertEqual(self.client.get(MESSAGES).status_code, 302)
        self.client.force_login(self.alice)
        self.assertEqual(self.client.get(MESSAGES).status_code, 200)
        self.assertEqual(post(self.client, MESSAGES, {"text": "x", "client_id": "c"}).status_code, 403)
        self.assertFalse(Message.objects.exists())

    @override_settings(CHAT_RATE_BURST=2, CHAT_RATE_PER_SECOND=0.5)
    def test_sends_past_the_burst_get_429(self):
        """HTTP sends of one token past the burst are answered 429 rate_limited with retry_after_ms."""
        statuses = [post(self.client, MESSAGES, {"text": "x", "client_id": "r%d" % n}, **self.bearer())
                    for n in range(3)]
        self.assertEqual([r.status_code for r in statuses], [200, 200, 429])
        refused = statuses[2].json()
        self.assertEqual((refused["code"], refused["client_id"]), ("rate_limited", "r2"))
        self.assertGreater(refused["retry_after_ms"], 1000)
        self.assertEqual(statuses[2]["Retry-After"], "2")
        self.assertEqual(Message.objects.count(), 2)


class HttpLimitTests(TestCase):
    @override_settings(CHAT_RATE_BURST=3, CHAT_RATE_PER_SECOND=4.0)
    def test_burst_then_refill(self):
        """A bucket gives the burst at once, then one send per 1/rate; a refusal says when."""
        for _ in range(3):
            httplimit.spend("token:1", now=100.0)
        error = self._refusal("token:1", 100.0)
        self.assertEqual((error.code, error.fields["retry_after_ms"]), ("rate_limited", 250))
        self.assertEqual(self._refusal("token:1", 100.1).fields["retry_after_ms"], 150)
        httplimit.spend("token:1", now=100.25)
        httplimit.spend("token:2", now=100.25)  # another credential has its own bucket

    @override_settings(CHAT_RATE_BURST=2, CHAT_RATE_PER_SECOND=1.0)
    def test_refill_stops_at_the_burst_and_full_buckets_are_forgotten(self):
        """A long pause refills to the burst only; a new bucket deletes the ones full again."""
        httplimit.spend("session:a", now=0.0)
        httplimit.spend("session:a", now=0.0)
        for _ in range(2):
            httplimit.spend("session:a", now=1000.0)
        self.assertEqual(self._refusal("session:a", 1000.0).code, "rate_limited")
        httplimit.spend("session:b", now=1003.0)  # a is full again (2 s at 1 per second): its row goes
        self.assertEqual(list(SendBucket.objects.values_list("credential", flat=True)), ["session:b"])

    @staticmethod
    def _refusal(key, now):
        try:
            httplimit.spend(key, now=now)
        except ClientError as error:
            return error
        raise AssertionError("not refused")


class PageTests(TestCase):
    def setUp(self):
        self.alice = User.objects.create_user("alice", password="pw-alice-123")
        self.client.force_login(self.alice)

    def test_create_shows_the_token_once(self):
        """Creating a token shows it with the copy-it-now line; the list never shows it again."""
        page = post(self.client, "/tokens/", {"name": "my bot", "expires_in_days": "30"})
        self.assertEqual(page.status_code, 200)
        self.assertEqual(page["Cache-Control"].split(",")[0], "max-age=0")
        token = page.context["created"][1]
        self.assertContains(page, token)
        self.assertContains(page, "Copy it now, it is not shown again.")
        row = ApiToken.objects.get()
        self.assertEqual((row.name, row.user), ("my bot", self.alice))
        listed = self.client.get("/tokens/")
        self.assertNotContains(listed, token)
        self.assertContains(listed, row.prefix)

    def test_bad_fields_have_codes_and_create_nothing(self):
        """A missing name or a bad expiry is a 400 naming the field's code; nothing is created."""
        for fields, code in (({"name": " "}, "invalid_token_name"), ({"name": "x" * 101}, "invalid_token_name"),
                             ({"name": "a", "expires_in_days": "0"}, "invalid_expiry"),
                             ({"name": "a", "expires_in_days": "soon"}, "invalid_expiry"),
                             ({"name": "a", "expires_in_days": "99999"}, "invalid_expiry")):
            page = post(self.client, "/tokens/", fields)
            self.assertEqual(page.status_code, 400)
            self.assertContains(page, 'data-code="%s"' % code, status_code=400)
        self.assertFalse(ApiToken.objects.exists())

    def test_revoke_is_the_owners(self):
        """Only the owner revokes a token (another user's is a 404); revoking twice changes nothing."""
        row, token = ApiToken.issue(self.alice, "bot")
        bob = User.objects.create_user("bob", password="pw-bob-12345")
        other = Client()
        other.force_login(bob)
        self.assertEqual(post(other, "/tokens/%d/revoke/" % row.pk).status_code, 404)
        self.assertIsNone(ApiToken.objects.get().revoked)
        self.assertRedirects(post(self.client, "/tokens/%d/revoke/" % row.pk), "/tokens/")
        revoked = ApiToken.objects.get().revoked
        self.assertIsNotNone(revoked)
        post(self.client, "/tokens/%d/revoke/" % row.pk)
        self.assertEqual(ApiToken.objects.get().revoked, revoked)
        self.assertEqual(code_of(auth.lookup, token), "token_revoked")

    def test_pages_need_login(self):
        """The tokens page redirects an anonymous visitor to the login."""
        self.client.logout()
        self.assertEqual(self.client.get("/tokens/").status_code, 302)


class SocketTests(ChannelTestCase):
    def setUp(self):
        self.alice = User.objects.create_user("alice", password="pw-alice-123")
        self.row, self.token = ApiToken.issue(self.alice, "bot")

    def connect(self, query="", headers=()):
        client = WSClient(ordered=True)
        content = {"headers": handshake_headers(None, ORIGIN) + list(headers)}
        client.send_and_consume("websocket.connect", content, path="/ws/rooms/lobby/" + query, check_accept=False)
        return client

    def test_token_opens_a_socket_as_its_user(self):
        """?token= and an Authorization header each open a socket as the token's user, without a session."""
        for client in (self.connect("?token=" + self.token),
                       self.connect(headers=[[b"authorization", ("Bearer " + self.token).encode()]])):
            self.assertEqual(client.receive(json=False), {"accept": True})
            join = client.receive()
            self.assertEqual((join["type"], join["user"]), ("presence", "alice"))

    def test_bad_token_is_refused_at_the_handshake(self):
        """A bad token closes the handshake even beside a valid session cookie."""
        client = WSClient(ordered=True)
        client.send_and_consume("websocket.connect", {"headers": handshake_headers(self.alice, ORIGIN)},
                                path="/ws/rooms/lobby/?token=chat_bad", check_accept=False)
        self.assertEqual(client.receive(json=False), {"close": True})

    def test_revocation_closes_the_tokens_sockets(self):
        """Revoking sends a close to every socket the token opened."""
        client = self.connect("?token=" + self.token)
        while client.receive(json=False) is not None:
            pass
        auth.revoke(self.row)
        self.assertEqual(client.receive(json=False), {"close": True})
        self.assertEqual(self.connect("?token=" + self.token).receive(json=False), {"close": True})

    def test_a_revocation_during_the_handshake_is_not_missed(self):
        """A token revoked after the handshake's lookup, before its join, still closes the socket."""
        Group(self.row.group).add("test.reply")
        ApiToken.objects.filter(pk=self.row.pk).update(revoked=timezone.now())
        message = type("Message", (), {"api_token": self.row, "reply_channel": Channel("test.reply")})
        auth.check_revoked(message)
        self.assertEqual(self.get_next_message("test.reply", require=True).content, {"close": True})

    def test_a_ping_joins_the_tokens_group_again(self):
        """A token socket whose group entry was lost (a Redis restart) is back in the token's group
        after one ping, so a revocation still closes it."""
        client = self.connect("?token=" + self.token)
        while client.receive(json=False) is not None:
            pass
        reply_channel = client.reply_channel
        Group(self.row.group).discard(reply_channel)
        client.send_and_consume("websocket.receive", text='{"type": "ping"}', path="/ws/rooms/lobby/")
        while client.receive(json=False) is not None:
            pass
        auth.revoke(self.row)
        self.assertEqual(client.receive(json=False), {"close": True})

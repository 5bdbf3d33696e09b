"""Hardened defaults, without a deployment: security headers, cookie attributes, login throttling,
session rotation, password validators and the multipart refusal (tests/e2e/test_hardening.py
attacks the real deployment)."""
import re
from urllib.parse import urlencode

from channels.handler import AsgiHandler
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client, RequestFactory, TestCase, override_settings
from django.utils import timezone

from chat.poll import response as poll_response
from guard import throttle
from guard.addresses import client_address
from guard.models import LoginFailure
from my_project.headers import CONTENT_SECURITY_POLICY, HEADERS

PASSWORD = "correct-horse-battery-1"
# A Set-Cookie line's attributes, lower-cased: {"httponly": "", "samesite": "lax", ...}
ATTRIBUTE = re.compile(r";\s*([^=;]+)(?:=([^;]*))?")


def attributes(set_cookie):
    return {name.strip().lower(): (value or "").strip().lower() for name, value in ATTRIBUTE.findall(set_cookie)}


def post(client, path, fields, **extra):
    """A form POST as a browser sends it (the test client's default, multipart, is refused)."""
    return client.post(path, urlencode(fields), content_type="application/x-www-form-urlencoded", **extra)


def wsgi_set_cookies(response):
    """The Set-Cookie lines Django's WSGI handler (gunicorn) writes for a response."""
    return {c.key: c.output(header="").strip() for c in response.cookies.values()}


class HeaderTests(TestCase):
    def test_every_page_carries_the_headers(self):
        """Pages, redirects, 404s and the JSON history all carry nosniff, Referrer-Policy, the CSP
        and X-Frame-Options, and no HSTS over plain HTTP."""
        User.objects.create_user("hanna", password=PASSWORD)
        client = Client()
        client.login(username="hanna", password=PASSWORD)
        for path in ("/", "/accounts/login/", "/rooms/lobby/", "/rooms/lobby/messages?after=0", "/nowhere",
                     "/healthz"):
            response = client.get(path)
            for name, value in HEADERS:
                self.assertEqual(response[name], value, (path, name))
            self.assertNotIn("Strict-Transport-Security", response, path)

    def test_policy(self):
        """The policy allows scripts, styles and connections to the site only, and no framing."""
        for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
                          "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"):
            self.assertIn(directive, CONTENT_SECURITY_POLICY.split("; "))
        self.assertNotIn("unsafe-inline", CONTENT_SECURITY_POLICY)

    def test_long_poll_answers_carry_the_headers(self):
        """chat.poll's raw ASGI answers (not through Django's middleware) carry the same headers."""
        headers = dict((name.decode(), value.decode()) for name, value in poll_response(200, [])["headers"])
        for name, value in HEADERS:
            self.assertEqual(headers[name.lower()], value)

    def test_hsts_only_on_https(self):
        """With CHAT_HTTPS (SECURE_HSTS_SECONDS set) a secure request gets HSTS, a plain one none."""
        self.assertEqual(settings.SECURE_HSTS_SECONDS, 0)  # CHAT_HTTPS is off in the tests
        with override_settings(SECURE_HSTS_SECONDS=31536000):
            client = Client()
            self.assertEqual(client.get("/", secure=True)["Strict-Transport-Security"], "max-age=31536000")
            self.assertNotIn("Strict-Transport-Security", client.get("/"))


class CookieTests(TestCase):
    def login_response(self):
        User.objects.create_user("carl", password=PASSWORD)
        client = Client()
        client.get("/accounts/login/")
        return post(client, "/accounts/login/", {"username": "carl", "password": PASSWORD})

    def test_wsgi_cookies(self):
        """Through the WSGI handler (gunicorn) the session and CSRF cookies are HttpOnly and
        SameSite=Lax, on Python 3.7 whose Morsel has no samesite."""
        cookies = wsgi_set_cookies(self.login_response())
        for name in ("sessionid", "csrftoken"):
            self.assertIn(name, cookies)
            found = attributes(cookies[name])
            self.assertIn("httponly", found, cookies[name])
            self.assertEqual(found["samesite"], "lax", cookies[name])
            self.assertNotIn("secure", found)  # CHAT_HTTPS is off

    def test_asgi_cookies(self):
        """channels' ASGI handler (pages through daphne) writes the same attributes."""
        message = next(AsgiHandler.encode_response(self.login_response()))
        lines = [value.decode() for name, value in message["headers"] if name.lower() == b"set-cookie"]
        self.assertEqual(len(lines), 2)
        for line in lines:
            found = attributes(line)
            self.assertIn("httponly", found, line)
            self.assertEqual(found["samesite"], "lax", line)

    def test_secure_with_https(self):
        """With CHAT_HTTPS the cookies are Secure as well."""
        with override_settings(SESSION_COOKIE_SECURE=True, CSRF_COOKIE_SECURE=True):
            cookies = wsgi_set_cookies(self.login_response())
        for line in cookies.values():
            self.assertIn("secure", attributes(line))


class SessionTests(TestCase):
    def test_login_rotates_the_session(self):
        """A session key held before logging in (one an attacker could have planted) is not the
        one the logged-in user gets."""
        User.objects.create_user("sara", password=PASSWORD)
        client = Client()
        before = client.session.session_key
        self.assertTrue(before)
        response = post(client, "/accounts/login/", {"username": "sara", "password": PASSWORD})
        self.assertEqual(response.status_code, 302)
        self.assertNotEqual(client.cookies["sessionid"].value, before)

    def test_signup_rotates_the_session(self):
        """Signing up logs the new user in under a new session key."""
        client = Client()
        before = client.session.session_key
        response = post(client, "/accounts/signup/",
                        {"username": "sven", "password1": PASSWORD, "password2": PASSWORD})
        self.assertEqual(response.status_code, 302)
        self.assertNotEqual(client.cookies["sessionid"].value, before)

    def test_password_validators(self):
        """Signup refuses a common, a short and an all-numeric password."""
        for password, complaint in (("password", "too common"), ("x7-k", "too short"),
                                    ("83649172530", "entirely numeric")):
            response = post(Client(), "/accounts/signup/", {
                "username": "val", "password1": password, "password2": password})
            self.assertEqual(response.status_code, 400, password)
            self.assertIn(complaint, response.content.decode(), password)
        self.assertFalse(User.objects.filter(username="val").exists())


class MultipartTests(TestCase):
    def test_multipart_is_refused_unread(self):
        """A multipart body gets 415 with a JSON error before CSRF or the view reads it."""
        response = Client().post("/accounts/login/", {"username": "x", "password": "y"})  # multipart by default
        self.assertEqual(response.status_code, 415)
        self.assertEqual(response.json()["code"], "unsupported_media_type")
        self.assertEqual(response["X-Content-Type-Options"], "nosniff")

    def test_urlencoded_still_works(self):
        """A form-encoded login is not affected."""
        response = post(Client(), "/accounts/login/", {"username": "x", "password": "y"})
        self.assertEqual(response.status_code, 200)


def form_post(client, username, password, address="10.0.0.1"):
    """A login as nginx forwards it from `address` (its X-Forwarded-For)."""
    return post(client, "/accounts/login/", {"username": username, "password": password},
                HTTP_X_FORWARDED_FOR=address)


@override_settings(CHAT_LOGIN_FAILURES=5, CHAT_LOGIN_WINDOW=900, CHAT_PROXY_HOPS=1)
class ThrottleTests(TestCase):
    def setUp(self):
        User.objects.create_user("tina", password=PASSWORD)
        User.objects.create_user("tom", password=PASSWORD)

    def fail(self, times, username="tina", address="10.0.0.1"):
        for _ in range(times):
            self.assertEqual(form_post(Client(), username, "wrong", address).status_code, 200)

    def test_username_locked_after_failures(self):
        """After 5 failures the 6th attempt, even with the right password, gets 429, Retry-After and
        a message on the page; another username from another address logs in."""
        self.fail(5)
        refused = form_post(Client(), "tina", PASSWORD, "10.0.0.2")
        self.assertEqual(refused.status_code, 429)
        self.assertTrue(890 <= int(refused["Retry-After"]) <= 900, refused["Retry-After"])
        self.assertIn("Too many failed logins", refused.content.decode())
        self.assertEqual(form_post(Client(), "tom", PASSWORD, "10.0.0.3").status_code, 302)

    def test_address_locked_after_failures(self):
        """5 failures over different usernames from one address lock that address, for every
        username; leading X-Forwarded-For entries the client wrote change nothing."""
        for name in ("a1", "a2", "a3", "a4", "a5"):
            self.fail(1, username=name)
        self.assertEqual(form_post(Client(), "tom", PASSWORD, "10.0.0.1").status_code, 429)
        self.assertEqual(form_post(Client(), "tom", PASSWORD, "1.2.3.4, 10.0.0.1").status_code, 429)
        self.assertEqual(form_post(Client(), "tom", PASSWORD, "10.0.0.9").status_code, 302)

    def test_success_clears_the_username(self):
        """A successful login before the limit clears the username's count (not the address's)."""
        self.fail(4)
        self.assertEqual(form_post(Client(), "tina", PASSWORD, "10.0.0.7").status_code, 302)
        self.fail(4, address="10.0.0.8")
        self.assertEqual(form_post(Client(), "tina", PASSWORD, "10.0.0.7").status_code, 302)
        self.assertEqual(throttle.retry_after("x", "10.0.0.1"), 0)

    def test_window_passes(self):
        """Once the failures are older than the window, the username may log in again, and a new
        failure forgets the old rows."""
        self.fail(5)
        LoginFailure.objects.update(at=timezone.now() - timezone.timedelta(seconds=901))
        self.assertEqual(form_post(Client(), "tina", PASSWORD).status_code, 302)
        self.fail(1, username="other", address="10.9.9.9")
        self.assertEqual(LoginFailure.objects.count(), 2)


class AddressTests(TestCase):
    def request(self, forwarded=None, remote="192.0.2.1"):
        extra = {"REMOTE_ADDR": remote}
        if forwarded is not None:
            extra["HTTP_X_FORWARDED_FOR"] = forwarded
        return RequestFactory().get("/", **extra)

    def test_behind_one_proxy(self):
        """Behind nginx the address is the entry nginx wrote, the last; the client's own are ignored."""
        with override_settings(CHAT_PROXY_HOPS=1):
            self.assertEqual(client_address(self.request("203.0.113.5")), "203.0.113.5")
            self.assertEqual(client_address(self.request("6.6.6.6, 203.0.113.5")), "203.0.113.5")
            self.assertEqual(client_address(self.request()), "192.0.2.1")

    def test_without_a_proxy(self):
        """With CHAT_PROXY_HOPS=0 a client's X-Forwarded-For is never believed."""
        with override_settings(CHAT_PROXY_HOPS=0):
            self.assertEqual(client_address(self.request("6.6.6.6")), "192.0.2.1")

    def test_daphne_believes_forwarded_headers_only_behind_a_proxy(self):
        """daphne takes X-Forwarded-For's first entry as the client: with CHAT_PROXY_HOPS=0 (nothing in
        front, `make paas` here) it is given no forwarded header to read."""
        from interface.__main__ import proxy_headers
        from my_project import base_settings
        self.assertEqual(proxy_headers()["proxy_forwarded_address_header"], "X-Forwarded-For")
        hops, base_settings.CHAT_PROXY_HOPS = base_settings.CHAT_PROXY_HOPS, 0
        try:
            self.assertEqual(proxy_headers(), {})
        finally:
            base_settings.CHAT_PROXY_HOPS = hops

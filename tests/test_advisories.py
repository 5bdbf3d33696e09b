"""The closed advisories of docs/security.md, without a deployment: the signup password cap, the log
filter, the handshake check, nginx's header refusals and security headers as rendered, /healthz
(tests/e2e/test_advisories.py attacks the real deployment)."""
import logging
from unittest import mock
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client, TestCase
from twisted.web.http_headers import Headers

from chat.forms import SignupForm
from interface.server import splits_lines
from my_project.headers import HEADERS
from my_project.logfilter import EscapeControlCharacters, escape
from ops import render

PASSWORD = "correct-horse-battery-1"


class SignupPasswordTests(TestCase):
    def test_a_huge_password_is_refused_before_the_validators(self):
        """Passwords over 4096 characters are field errors, and no password validator runs
        (CVE-2021-45115: the similarity validator's cost grows with the password)."""
        data = {"username": "a.b.c.d", "password1": "x" * 480000, "password2": "x" * 480000}
        with mock.patch("django.contrib.auth.forms.password_validation.validate_password") as validate:
            form = SignupForm(data)
            self.assertFalse(form.is_valid())
        validate.assert_not_called()
        self.assertEqual(set(form.errors), {"password1", "password2"})
        self.assertIn("at most 4096 characters", form.errors["password2"][0])

    def test_the_longest_password_is_accepted(self):
        """A password of exactly 4096 characters is validated and saved as before."""
        password = (PASSWORD + "-") * 170
        password += "z" * (4096 - len(password))
        form = SignupForm({"username": "longpass", "password1": password, "password2": password})
        self.assertTrue(form.is_valid(), form.errors)
        self.assertTrue(form.save().check_password(password))

    def test_signup_page_answers_400(self):
        """The signup view uses the capped form: 400 with the error, no user created."""
        response = Client().post("/accounts/signup/", urlencode(
            {"username": "huge", "password1": "x" * 5000, "password2": "x" * 5000}),
            content_type="application/x-www-form-urlencoded")
        self.assertEqual(response.status_code, 400)
        self.assertContains(response, "at most 4096 characters", status_code=400)
        self.assertFalse(User.objects.filter(username="huge").exists())


class LogFilterTests(TestCase):
    def test_control_characters_are_escaped(self):
        """C0, DEL, C1 and Unicode line separators are written as escapes; other text is kept."""
        self.assertEqual(escape("a\nb\rc\td\x0be\x1bf\x7fg\x85h\u2028i é"),
                         "a\\nb\\rc\\td\\x0be\\x1bf\\x7fg\\x85h\\u2028i é")

    def test_a_record_formats_to_one_line(self):
        """A record whose argument holds a newline formats to one line (CVE-2025-48432)."""
        record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "Not Found: %s",
                                   ("/nope\nFORGED LINE",), None)
        self.assertTrue(EscapeControlCharacters().filter(record))
        self.assertEqual(logging.Formatter("%(message)s").format(record), "Not Found: /nope\\nFORGED LINE")

    def test_every_handler_of_the_settings_escapes(self):
        """Every handler settings.LOGGING defines carries the filter."""
        for name, handler in settings.LOGGING["handlers"].items():
            self.assertIn("escape_controls", handler.get("filters", []), name)
        self.assertEqual(settings.LOGGING["filters"]["escape_controls"]["()"],
                         "my_project.logfilter.EscapeControlCharacters")


class Handshake(object):
    def __init__(self, uri, headers):
        self.uri, self.requestHeaders = uri, Headers(headers)


class HandshakeTests(TestCase):
    def test_line_breaks_autobahn_splits_at_are_found(self):
        """Each byte autobahn's splitlines() ends a line at, in a value or the path, is found; a plain
        handshake passes (CVE-2026-44546)."""
        plain = {b"Upgrade": [b"websocket"], b"X-Probe": [b"a b\tc"]}
        self.assertFalse(splits_lines(Handshake(b"/ws/rooms/lobby/", plain)))
        for byte in (b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\x85"):
            probe = {b"Upgrade": [b"websocket"], b"X-Probe": [b"a" + byte + b"X-Forwarded-For: 6.6.6.6"]}
            self.assertTrue(splits_lines(Handshake(b"/ws/rooms/lobby/", probe)), byte)
            self.assertTrue(splits_lines(Handshake(b"/ws/" + byte, plain)), byte)


class NginxTests(TestCase):
    def test_security_headers_rendered_once_each(self):
        """Each header of HEADERS is added on every answer (always) and hidden from the upstream's."""
        lines = render.security_headers(HEADERS)
        for name, value in HEADERS:
            self.assertIn('add_header %s "%s" always;' % (name, value), lines)
            self.assertIn("proxy_hide_header %s;" % name, lines)

    def test_header_refusals_are_in_the_configuration(self):
        """nginx.conf refuses long Content-Types and backslashed cookies; proxy-headers.conf forwards
        the one Content-Type it checked."""
        templates = render.templates()
        with open(templates["nginx.conf"]) as main, open(templates["proxy-headers.conf"]) as proxy:
            main, proxy = main.read(), proxy.read()
        for condition in ("$content_type_too_long", "$cookie_backslashes"):
            self.assertIn("if (%s) {\n            return 400;" % condition, main)
        self.assertIn("{{ security_headers }}", main)
        self.assertIn("proxy_set_header Content-Type $http_content_type;", proxy)


class HealthTests(TestCase):
    def test_no_versions_and_no_xss_auditor(self):
        """/healthz names no Python version; X-XSS-Protection is "0" once (not SecurityMiddleware's
        "1; mode=block")."""
        response = Client().get("/healthz")
        self.assertNotIn("python", response.json())
        self.assertEqual(response["X-XSS-Protection"], "0")
        self.assertEqual([value for name, value in response.items() if name == "X-XSS-Protection"], ["0"])

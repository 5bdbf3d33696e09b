"""A user of the site from outside: HTTP with cookies and CSRF, and WebSockets, all through nginx."""
import http.cookiejar
import json
import re
import urllib.error
import urllib.parse
import urllib.request

import websocket

CSRF_INPUT = re.compile(r"name=['\"]csrfmiddlewaretoken['\"] value=['\"]([^'\"]+)")


class Response(object):
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body.decode())

    @property
    def text(self):
        return self.body.decode(errors="replace")


class Browser(object):
    """Cookies, CSRF tokens and redirects, like a browser with no JavaScript."""

    def __init__(self, base_url):
        self.base_url = base_url.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def request(self, path, data=None, headers=None, timeout=30):
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(self.base_url + path, data=body, headers=headers or {})
        try:
            with self.opener.open(request, timeout=timeout) as resp:
                return Response(resp.status, resp.headers, resp.read())
        except urllib.error.HTTPError as err:
            return Response(err.code, err.headers, err.read())

    def get(self, path, **kwargs):
        return self.request(path, **kwargs)

    def post_form(self, path, fields, form_page=None):
        """GET the form page for its CSRF token, then POST the fields with it."""
        page = self.get(form_page or path)
        token = CSRF_INPUT.search(page.text)
        data = dict(fields)
        if token:
            data["csrfmiddlewaretoken"] = token.group(1)
        return self.request(path, data=data, headers={"Referer": self.base_url + (form_page or path)})

    def signup(self, username, password="correct-horse-battery-1"):
        resp = self.post_form("/accounts/signup/", {
            "username": username, "password1": password, "password2": password})
        assert resp.status == 200 and self.cookie("sessionid"), resp.text[:500]
        return self

    def login(self, username, password="correct-horse-battery-1"):
        resp = self.post_form("/accounts/login/", {"username": username, "password": password})
        assert self.cookie("sessionid"), resp.text[:500]
        return self

    def cookie(self, name):
        for cookie in self.jar:
            if cookie.name == name:
                return cookie.value
        return None

    def cookie_header(self):
        return "; ".join("%s=%s" % (c.name, c.value) for c in self.jar)

    def websocket(self, path, origin=None, timeout=10, **options):
        """An open websocket-client connection carrying this browser's cookies (options: e.g.
        subprotocols=[...])."""
        url = "ws" + self.base_url[len("http"):] + path
        return websocket.create_connection(
            url, timeout=timeout, cookie=self.cookie_header(),
            origin=origin if origin is not None else self.base_url, **options)


def receive_until(ws, predicate, limit=50):
    """Frames read until one matches predicate; returns (match, frames before it)."""
    seen = []
    for _ in range(limit):
        frame = json.loads(ws.recv())
        if predicate(frame):
            return frame, seen
        seen.append(frame)
    raise AssertionError("no matching frame in %r" % seen)

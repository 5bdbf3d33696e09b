"""Handshake headers for channels.test clients, with a login as the site makes it."""
from django.conf import settings
from django.test import Client


def handshake_headers(user=None, origin=None):
    """daphne's header list (byte pairs) for a socket of `user`: a database session behind the
    cookie, as a browser that logged in has. (channels.test's WSClient.force_login writes into the
    channel session engine, which in this project is not the HTTP one.)"""
    browser = Client()
    if user is not None:
        browser.force_login(user)
    cookie = browser.cookies.get(settings.SESSION_COOKIE_NAME)
    headers = [[b"cookie", ("%s=%s" % (
        settings.SESSION_COOKIE_NAME, cookie.value if cookie else "")).encode()]]
    if origin:
        headers.append([b"origin", origin.encode()])
    return headers

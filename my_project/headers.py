"""Security headers on every response: the middleware adds them to Django's, and the long-polls' raw
ASGI answers (chat.poll.response) take the same list from asgi_headers()."""

# The room page and its client satisfy this: scripts and styles from files only (the page's facts
# are data attributes, its history a type="application/json" block), no plugins, no framing.
# connect-src 'self' covers the page's own ws:// and wss:// (CSP Level 3 matches a WebSocket to the
# page's host and port under 'self'; chromium connects with it, tests/e2e/test_hardening.py), where
# "ws: wss:" would let a script reach any host.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "object-src 'none'",
))

# HSTS is SecurityMiddleware's (SECURE_HSTS_SECONDS, with CHAT_HTTPS): only a secure request may
# carry it. Django 1.11 has no setting for Referrer-Policy nor Content-Security-Policy.
HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Frame-Options", "DENY"),
    # "0" turns off what is left of browsers' XSS auditors (OWASP's advice): their "mode=block" could
    # be used to cut a page's own scripts out; the CSP is the protection.
    ("X-XSS-Protection", "0"),
)


def asgi_headers():
    """HEADERS as an ASGI http.response message lists them."""
    return [[name.lower().encode("ascii"), value.encode("ascii")] for name, value in HEADERS]


def security_headers(get_response):
    """Middleware: every header of HEADERS on every response that has not set its own."""
    def middleware(request):
        response = get_response(request)
        for name, value in HEADERS:
            if name not in response:
                response[name] = value
        return response
    return middleware

"""SameSite=Lax on every cookie the site sets (session, CSRF, messages).

Django 1.11 has no setting for it and CPython 3.7's http.cookies.Morsel refuses the "samesite" key
(3.8 added it), so the middleware swaps each response cookie for a Morsel that knows the attribute.
gunicorn's WSGI handler and channels' ASGI handler both write a cookie as Morsel.output(), so both
carry it. Lax, not Strict: a link to a room from elsewhere opens it logged in; a cross-site POST or
subresource request carries no cookie.
"""
from http.cookies import Morsel

SAME_SITE = "Lax"


class SameSiteMorsel(Morsel):
    """A Morsel that accepts and writes the SameSite attribute on CPython before 3.8."""
    _reserved = dict(Morsel._reserved, samesite="SameSite")


def with_same_site(morsel, value=SAME_SITE):
    """A copy of `morsel` with SameSite=value (an attribute already set is kept)."""
    copy = SameSiteMorsel()
    copy.set(morsel.key, morsel.value, morsel.coded_value)
    copy.update(dict(morsel))
    if not copy["samesite"]:
        copy["samesite"] = value
    return copy


def same_site(get_response):
    """Middleware: SameSite on the response's cookies (listed before the middleware that set them)."""
    def middleware(request):
        response = get_response(request)
        for key, morsel in list(response.cookies.items()):
            response.cookies[key] = with_same_site(morsel)
        return response
    return middleware

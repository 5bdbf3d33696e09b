"""The address a request came from, as far as the proxies in front can be trusted to say."""
from django.conf import settings


def client_address(request):
    """The entry the nearest of CHAT_PROXY_HOPS trusted proxies appended to X-Forwarded-For (nginx in
    every shape `manage.py serve` starts, or a platform's router: 1), else the peer's REMOTE_ADDR.

    Entries further left were written by the client and are never used: a client sending its own
    X-Forwarded-For cannot pose as another address. With CHAT_PROXY_HOPS=0 (nothing in front) the
    header is ignored altogether."""
    hops = settings.CHAT_PROXY_HOPS
    if hops:
        forwarded = [entry.strip() for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [entry for entry in forwarded if entry]
        if len(forwarded) >= hops:
            return forwarded[-hops][:64]
    return request.META.get("REMOTE_ADDR") or "unknown"

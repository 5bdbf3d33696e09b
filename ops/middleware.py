"""Response header naming the pool and process that served a page: how tests prove the routing."""
import os

from django.conf import settings


def served_by(get_response):
    tag = None

    def middleware(request):
        nonlocal tag
        response = get_response(request)
        if tag is None:
            tag = "%s/%d" % (settings.POOL, os.getpid())
        response["X-Served-By"] = tag
        return response
    return middleware

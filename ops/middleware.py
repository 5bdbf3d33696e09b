"""Response header naming the pool and process that served a page: how tests prove the routing."""
from . import identity


def served_by(get_response):
    tag = None

    def middleware(request):
        nonlocal tag
        response = get_response(request)
        if tag is None:
            tag = identity.tag()
        response["X-Served-By"] = tag
        return response
    return middleware

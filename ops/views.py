"""Health endpoint for nginx, load balancers and the tests."""
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from . import releases


@require_GET
def healthz(request):
    # No software versions in the answer (anyone may ask): `make status` names each process's Python.
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database = "ok"
    except Exception as exc:  # any database failure is reported, not raised
        database = "error: %s" % exc.__class__.__name__
    status = 200 if database == "ok" else 503
    return JsonResponse({
        "status": "ok" if status == 200 else "degraded",
        "database": database,
        "layer": settings.CHAT_LAYER,
        "release": releases.running(),
    }, status=status)

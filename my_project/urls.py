"""Plain pages served by gunicorn (and by the realtime pool for /poll/ through daphne)."""
from django.conf.urls import include, url

urlpatterns = [
    url(r"^", include("ops.urls")),
    url(r"^", include("chat.urls")),
    url(r"^tokens/", include("tokens.urls")),
    url(r"^", include("notifications.urls")),
]

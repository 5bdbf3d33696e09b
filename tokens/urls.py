"""The tokens pages (mounted at /tokens/)."""
from django.conf.urls import url

from . import views

urlpatterns = [
    url(r"^$", views.token_list, name="tokens"),
    url(r"^(?P<pk>\d+)/revoke/$", views.token_revoke, name="token_revoke"),
]

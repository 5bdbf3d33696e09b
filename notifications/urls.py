"""The notifications' pages."""
from django.conf.urls import url

from . import views

urlpatterns = [
    url(r"^notifications/$", views.notification_list, name="notification_list"),
    url(r"^notifications/read$", views.mark_all_read, name="notifications_read"),
    url(r"^notifications/(?P<pk>\d+)/$", views.notification_open, name="notification_open"),
]

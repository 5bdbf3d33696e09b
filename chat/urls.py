"""The chat app's pages."""
from django.conf.urls import url
from django.contrib.auth import views as auth_views

from guard.views import ThrottledLoginView

from . import views

urlpatterns = [
    url(r"^$", views.room_list, name="room_list"),
    url(r"^rooms/$", views.room_create, name="room_create"),
    url(r"^rooms/(?P<slug>[-\w]+)/$", views.room_detail, name="room_detail"),
    url(r"^rooms/(?P<slug>[-\w]+)/messages$", views.room_messages, name="room_messages"),
    url(r"^rooms/(?P<slug>[-\w]+)/members/(?P<action>invite|remove)$", views.room_members, name="room_members"),
    url(r"^accounts/signup/$", views.signup, name="signup"),
    url(r"^accounts/login/$", ThrottledLoginView.as_view(), name="login"),
    url(r"^accounts/logout/$", auth_views.LogoutView.as_view(), name="logout"),
]

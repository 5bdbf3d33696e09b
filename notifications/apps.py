"""The notifications application."""
from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """Mentions in chat messages, turned into notifications by the background pool."""
    name = "notifications"

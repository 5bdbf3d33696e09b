"""The chat application."""
from django.apps import AppConfig


class ChatConfig(AppConfig):
    """Rooms, messages and the consumers that serve them."""
    name = "chat"

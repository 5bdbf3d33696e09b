"""The guard application."""
from django.apps import AppConfig


class GuardConfig(AppConfig):
    """Login throttling (a table every topology's processes share) and request refusals."""
    name = "guard"

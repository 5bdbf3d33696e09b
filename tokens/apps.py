"""The tokens application."""
from django.apps import AppConfig


class TokensConfig(AppConfig):
    """Personal API tokens, their pages, and the per-credential limit on HTTP sends."""
    name = "tokens"

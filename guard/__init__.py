"""Defences of the request path: login throttling, the client's address, refused request bodies."""
default_app_config = "guard.apps.GuardConfig"

"""Settings of the peer: SQLite in WAL mode and channels_redis, both from the environment."""
import os
import secrets

BASE_DIR = os.path.dirname(os.path.abspath(__file__))
SECRET_KEY = os.environ.get("PEER_SECRET_KEY") or secrets.token_urlsafe(32)  # nothing signed outlives a run
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "daphne", "channels", "peer"]
ROOT_URLCONF = "peer.urls"
ASGI_APPLICATION = "peer.asgi.application"
DATABASES = {"default": {
    "ENGINE": "django.db.backends.sqlite3",
    "NAME": os.environ["PEER_DB"],
    "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE", "timeout": 20},
    "CONN_MAX_AGE": 600,
}}
CHANNEL_LAYERS = {"default": {
    "BACKEND": "channels_redis.core.RedisChannelLayer",
    # redis-py 8's asyncio pool stops at 100 connections; 100 clients connecting at once need more.
    "CONFIG": {"hosts": [{"address": os.environ["PEER_REDIS_URL"], "max_connections": 2000}],
               "capacity": 5000},
}}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}

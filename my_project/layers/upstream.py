"""The libraries' own layer classes, for the benchmarks' side-by-side runs (CHAT_LAYER_FLAVOR=upstream)."""
import asgi_ipc
import asgi_redis

from .ipc import IPCQuestions
from .redis_layer import RedisQuestions


class IPCChannelLayer(IPCQuestions, asgi_ipc.IPCChannelLayer):
    """asgi_ipc as released: its own send and receive; only the project's questions (depths,
    clean-up) answered, so `manage.py serve` and `status` handle it like the tuned class."""


class RedisChannelLayer(RedisQuestions, asgi_redis.RedisChannelLayer):
    """asgi_redis as released: its own send and receive; only the project's questions (depths, the
    start-up check) answered."""

"""Channel layer classes the project configures: upstream ones, extended from outside (subclasses,
never patches), each in its own module, each answering the project's questions (base.ProjectLayer)."""
from .ipc import IPCChannelLayer
from .rabbitmq import RabbitmqChannelLayer
from .redis_layer import RedisChannelLayer
from .sentinel import SentinelChannelLayer

__all__ = ["IPCChannelLayer", "RabbitmqChannelLayer", "RedisChannelLayer", "SentinelChannelLayer"]

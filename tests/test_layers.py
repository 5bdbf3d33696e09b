"""Every channel layer the project configures passes asgiref's own conformance suite."""
import shutil
import unittest

import pytest
from asgi_ipc import IPCChannelLayer
from asgiref.conformance import ConformanceTestCase

from my_project.layers import RedisChannelLayer

from .e2e.servers import RedisServer

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None,
                                 reason="redis-server is not installed (make test installs it)")


class IPCConformance(ConformanceTestCase):
    """asgi_ipc as settings.py configures it (prefix per deployment)."""
    expiry_delay = 1.1
    capacity_limit = 5

    @classmethod
    def setUpClass(cls):
        cls.channel_layer = IPCChannelLayer(prefix="chat-conformance", expiry=1, group_expiry=2, capacity=5)

    @classmethod
    def tearDownClass(cls):
        cls.channel_layer.flush()

    def setUp(self):
        self.channel_layer.flush()


class _RedisConformance(ConformanceTestCase):
    expiry_delay = 1.1
    capacity_limit = 5
    shards = 1

    @classmethod
    def setUpClass(cls):
        cls.servers = [RedisServer().start() for _ in range(cls.shards)]
        cls.channel_layer = RedisChannelLayer(
            hosts=[s.url for s in cls.servers], expiry=1, group_expiry=2, capacity=5,
            blpop_timeout=0.2)

    @classmethod
    def tearDownClass(cls):
        for server in cls.servers:
            server.close()

    def setUp(self):
        self.channel_layer.flush()


@needs_redis
class RedisConformance(_RedisConformance):
    """The project's RedisChannelLayer (short BLPOP timeout) on one server."""


@needs_redis
class ShardedRedisConformance(_RedisConformance):
    """The same layer sharded over two servers."""
    shards = 2


del ConformanceTestCase, _RedisConformance  # not test cases themselves

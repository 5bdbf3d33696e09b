"""asgiref's conformance suite for the project's layer classes, as a plain unittest module: pytest runs
it on the workers' Python (through test_layers.py), and test_layers.py runs it with unittest on the
interface server's Python too. Imports no Django."""
import os
import shutil
import unittest

from asgiref.conformance import ConformanceTestCase

from harness.servers import RABBITMQ_SERVER, RabbitmqServer, RedisServer, SentinelServers
from my_project.layers import IPCChannelLayer, RabbitmqChannelLayer, RedisChannelLayer, SentinelChannelLayer
from my_project.layers.ipc import remove_segments

needs_redis = unittest.skipIf(shutil.which("redis-server") is None,
                              "redis-server is not installed (make test installs it)")


class IPCConformance(ConformanceTestCase):
    """The project's IPC layer (asgi_ipc with crash-safe locks)."""
    expiry_delay = 1.1
    capacity_limit = 5

    @classmethod
    def setUpClass(cls):
        cls.channel_layer = IPCChannelLayer(prefix="chat-conformance", expiry=1, group_expiry=2, capacity=5)

    @classmethod
    def tearDownClass(cls):
        cls.channel_layer.flush()
        remove_segments("chat-conformance")

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


@needs_redis
class SentinelConformance(_RedisConformance):
    """The Sentinel layer on a master with two replicas, passwords on the masters and the Sentinels."""

    @classmethod
    def setUpClass(cls):
        group = SentinelServers(password="master-secret", sentinel_password="sentinel-secret").start()
        cls.servers = [group]  # closed by tearDownClass, as the Redis servers are
        try:
            cls.channel_layer = SentinelChannelLayer(
                sentinels=group.sentinels, services=[group.service], password=group.password,
                sentinel_password=group.sentinel_password, expiry=1, group_expiry=2, capacity=5,
                blpop_timeout=0.2)
        except Exception:  # unittest skips tearDownClass when setUpClass fails
            group.close()
            raise


needs_rabbitmq = unittest.skipIf(not os.path.exists(RABBITMQ_SERVER),
                                 "rabbitmq-server is not installed (make test installs it)")


@needs_rabbitmq
class RabbitmqConformance(ConformanceTestCase):
    """The project's RabbitMQ layer on a broker of its own (a short receive timeout)."""
    expiry_delay = 1.1
    capacity_limit = 5

    @classmethod
    def setUpClass(cls):
        cls.server = RabbitmqServer().start()
        cls.channel_layer = RabbitmqChannelLayer(url=cls.server.url, expiry=1, group_expiry=2, capacity=5,
                                                 receive_timeout=0.2)

    @classmethod
    def tearDownClass(cls):
        cls.channel_layer.close()
        cls.server.close()

    def setUp(self):
        self.channel_layer.flush()


del ConformanceTestCase, _RedisConformance  # not test cases themselves

"""Commands packed by hiredis are the bytes redis-py would send, and the Redis layers use it."""
import redis
from redis.connection import Connection, Token, UnixDomainSocketConnection

from my_project.layers import RedisChannelLayer
from my_project.layers.redis_packing import HiredisPacking, packing


def test_packed_like_redis_py():
    """str (non-ASCII too), bytes, ints and floats pack to redis-py's bytes, and a two-word command
    name is split as redis-py splits it."""
    ours, theirs = packing(Connection)(), Connection()
    for args in (("EVALSHA", "f00d", 2, b"k\x00\xff", "k\u00e9", 1700000000.123456, -3, 0.1),
                 ("CONFIG GET", "maxmemory"), ("SET", "k", "v" * 7000)):
        assert b"".join(ours.pack_command(*args)) == b"".join(theirs.pack_command(*args))


def test_token_falls_back_to_redis_py():
    """An argument hiredis cannot pack (redis-py's Token) goes through redis-py's own packer."""
    args = ("ZRANGE", "k", 0, -1, Token.get_token("WITHSCORES"))
    assert b"".join(packing(Connection)().pack_command(*args)) == b"".join(Connection().pack_command(*args))


def test_one_class_per_base():
    """Each connection class gets one packing subclass, and packing it again changes nothing."""
    assert packing(Connection) is packing(Connection)
    assert packing(packing(Connection)) is packing(Connection)
    assert issubclass(packing(UnixDomainSocketConnection), UnixDomainSocketConnection)


def test_the_layer_packs_with_hiredis():
    """The Redis layer's clients (one per shard) make hiredis-packing connections of the class the
    URL asked for (no server needed: nothing connects)."""
    layer = RedisChannelLayer(hosts=["redis://127.0.0.1:1/0", "unix:///nonexistent/redis.sock"])
    classes = [client.connection_pool.connection_class for client in layer._connection_list]
    assert all(issubclass(cls, HiredisPacking) for cls in classes)
    assert issubclass(classes[1], UnixDomainSocketConnection)
    assert isinstance(layer._connection_list[0], redis.Redis)

"""The Redis scripts take their leading arguments by name, in the order the Python builds them."""
from my_project.layers import redis_scripts
from my_project.layers.redis_scripts import BATCH_ARGS, PUSH_ARGS, _bind, split_item, stamp, wake_channel, wake_prefix


def test_bind_names_the_leading_arguments_in_order():
    """Each name is a Lua local read from its ARGV position; `rest` is the first one after them."""
    assert _bind(("a", "b"), numbers=("b",)) == (
        "local a = ARGV[1]\nlocal b = tonumber(ARGV[2])\nlocal rest = 3\n")


def test_scripts_read_their_named_arguments():
    """The send and batch scripts declare every name their Python side fills in."""
    for name in PUSH_ARGS:
        assert "local %s = " % name in redis_scripts.LUA_SEND
    for name in PUSH_ARGS + BATCH_ARGS:
        assert "local %s = " % name in redis_scripts.LUA_BATCH
    assert "local rest = %d" % (len(PUSH_ARGS) + len(BATCH_ARGS) + 1) in redis_scripts.LUA_BATCH


def test_list_items_round_trip():
    """An item reads back as its expiry, process-local channel and body (which may hold colons)."""
    expires, local, body = split_item(stamp(60) + b":daphne.response.x!y:a:b")
    assert local == b"daphne.response.x!y" and body == b"a:b" and expires > 0
    assert split_item(stamp(60) + b"::body")[1:] == (b"", b"body")


def test_pushes_publish_on_the_wake_channel_the_receivers_subscribe_to():
    """The scripts publish on `wake` .. list, `wake` being the layer's wake_prefix or "" (one shard:
    nothing published); a receiver subscribes to wake_channel(prefix, list), the same name."""
    assert "wake" in PUSH_ARGS and PUSH_ARGS[-1] == "stamp"
    assert "redis.call('PUBLISH', wake .. list, '')" in redis_scripts.LUA_PUSH
    assert "if wake ~= '' and not woken[list] then" in redis_scripts.LUA_PUSH
    assert wake_channel("chat:", "http.request") == wake_prefix("chat:") + "http.request" == "chat:wake:http.request"

"""Every channel layer the project configures passes asgiref's own conformance suite, and answers
the project's questions (send_batch, depths, check, clean-up, values)."""
import glob
import os
import re
import shutil
import signal
import subprocess
import time

import pytest
from django.conf import settings

from harness.servers import RedisServer, free_port
from my_project.layers import IPCChannelLayer, RedisChannelLayer, upstream
from my_project.layers.base import LayerUnavailable
from my_project.layers.ipc import SHM_DIR, remove_segments

from .layer_conformance import IPCConformance, RedisConformance, ShardedRedisConformance  # noqa: F401 (collected here)

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None,
                                 reason="redis-server is not installed (make test installs it)")
INTERFACE_PYTHON = os.path.join(settings.CHAT_INTERFACE_VENV, "bin", "python") if settings.CHAT_INTERFACE_VENV else ""


@pytest.mark.skipif(not os.path.exists(INTERFACE_PYTHON), reason="no interface virtualenv (make builds it)")
def test_conformance_on_the_interface_python():
    """The same conformance suite passes on the interface server's Python (with msgpack 1.x), every
    test of it: the layer classes are the same on both sides of the one layer."""
    result = subprocess.run([INTERFACE_PYTHON, "-m", "unittest", "-v", "tests.layer_conformance"],
                            cwd=settings.BASE_DIR, env=dict(os.environ, PYTHONWARNINGS="ignore"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"Ran (\d+) tests", result.stdout) and "skipped" not in result.stdout.split("Ran")[-1], \
        result.stdout[-500:]


def test_ipc_survives_a_process_killed_holding_the_lock():
    """A process SIGKILLed while it holds the IPC store's lock does not wedge the layer: the next
    send from another process goes through at once (upstream's semaphore stays taken for good)."""
    layer = IPCChannelLayer(prefix="chat-killtest", capacity=5)
    layer.flush()
    child = os.fork()
    if child == 0:  # hold the lock until killed
        with layer.message_store.locked():
            time.sleep(60)
        os._exit(0)
    time.sleep(0.3)
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    started = time.time()
    layer.send("after.kill", {"ok": True})
    assert time.time() - started < 1
    assert layer.receive(["after.kill"]) == ("after.kill", {"ok": True})
    remove_segments("chat-killtest")


def test_ipc_torn_store_is_reset():
    """A store whose both slots were torn (here by hand: a kill mid-copy tears one) is reset, not
    an error on every operation."""
    layer = IPCChannelLayer(prefix="chat-torntest", capacity=5)
    layer.send("torn", {"n": 1})
    store = layer.message_store
    for base in (0, store.slot_size):
        store.mmap[base:base + 8] = b"\x80\x02}q\x00(X\xff"
    layer.send("torn", {"n": 2})
    assert layer.receive(["torn"]) == ("torn", {"n": 2})
    remove_segments("chat-torntest")


def test_ipc_blocking_receive_is_woken_by_a_send_from_another_process():
    """A blocking receive sleeps on the doorbell and returns as soon as another process sends,
    long before its timeout (upstream asgi_ipc ignores block=True and the worker polls)."""
    layer = IPCChannelLayer(prefix="chat-waketest", capacity=5, block_timeout=20)
    layer.flush()
    layer.doorbell.listen(["wake.other", "wake.me"])  # listening before the child rings
    child = os.fork()
    if child == 0:
        time.sleep(0.3)
        IPCChannelLayer(prefix="chat-waketest", capacity=5).send("wake.me", {"n": 1})
        os._exit(0)
    try:
        started = time.time()
        assert layer.receive(["wake.other", "wake.me"], block=True) == ("wake.me", {"n": 1})
        assert time.time() - started < 10, "woken by the timeout, not by the send"
    finally:
        os.waitpid(child, 0)
        remove_segments("chat-waketest")


def test_ipc_doorbell_forgets_a_dead_listener():
    """The socket a killed process left behind is removed by the next send; sends never fail."""
    layer = IPCChannelLayer(prefix="chat-belltest", capacity=5)
    child = os.fork()
    if child == 0:
        layer.doorbell.listen(["bell"])
        time.sleep(60)
        os._exit(0)
    try:
        directory = layer.doorbell.directory
        wait_until = time.time() + 10
        while not (os.path.isdir(directory) and os.listdir(directory)) and time.time() < wait_until:
            time.sleep(0.05)
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        layer.send("bell", {"n": 1})
        assert os.listdir(directory) == []
        assert layer.receive(["bell"]) == ("bell", {"n": 1})
    finally:
        remove_segments("chat-belltest")


def test_ipc_doorbell_rings_only_who_waits_on_the_channel():
    """A send wakes the processes waiting on its channel, not the others (each wake costs the
    woken process a pass over the whole store)."""
    sender = IPCChannelLayer(prefix="chat-ringtest", capacity=5)
    waiting_here, waiting_there = (IPCChannelLayer(prefix="chat-ringtest", capacity=5) for _ in range(2))
    try:
        here = waiting_here.doorbell.listen(["ring.here"])
        there = waiting_there.doorbell.listen(["ring.there"])
        # separate processes in real life; here two listeners of one process need their own sockets
        sender.send("ring.here", {"n": 1})
        assert here.recv(64) == b"!"
        with pytest.raises(BlockingIOError):
            there.recv(64)
    finally:
        remove_segments("chat-ringtest")


def test_ipc_group_send_skips_full_members_in_one_pass():
    """A group send reaches every member below capacity and drops (never raises) for full ones."""
    layer = IPCChannelLayer(prefix="chat-grouptest", capacity=1)
    try:
        layer.flush()
        for member in ("g.a", "g.b", "g.c"):
            layer.group_add("grp", member)
        layer.send("g.b", {"n": 0})
        layer.send_group("grp", {"n": 1})
        assert layer.receive(["g.a"]) == ("g.a", {"n": 1})
        assert layer.receive(["g.b"]) == ("g.b", {"n": 0})
        assert layer.receive(["g.b"]) == (None, None)
        assert layer.receive(["g.c"]) == ("g.c", {"n": 1})
    finally:
        remove_segments("chat-grouptest")


@pytest.fixture(params=["ipc", "redis", "redis-sharded"])
def batch_layer(request):
    """A fresh layer of each kind the project ships, with a capacity of 2 for the test's
    process-local lists."""
    kwargs = dict(expiry=5, group_expiry=60, capacity=5, channel_capacity={"t.local!*": 2})
    if request.param == "ipc":
        layer = IPCChannelLayer(prefix="chat-batchtest", **kwargs)
        layer.flush()
        yield layer
        remove_segments("chat-batchtest")
        return
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (make test installs it)")
    servers = [RedisServer().start() for _ in range(2 if request.param == "redis-sharded" else 1)]
    try:
        yield RedisChannelLayer(hosts=[s.url for s in servers], blpop_timeout=0.2, **kwargs)
    finally:
        for server in servers:
            server.close()


def drain(layer, channel):
    out = []
    while True:
        found = layer.receive([channel])
        if found == (None, None):
            return out
        out.append(found)


def test_receive_batch_takes_up_to_its_limit_in_order(batch_layer):
    """receive_batch gives up to `limit` messages of one channel, oldest first, at once, and an
    empty list when the channel holds none; the layer names it among its extensions."""
    assert "receive_batch" in batch_layer.extensions
    for n in range(5):
        batch_layer.send("t.jobs", {"n": n})
    assert [m["n"] for m in batch_layer.receive_batch("t.jobs", 3)] == [0, 1, 2]
    assert [m["n"] for m in batch_layer.receive_batch("t.jobs", 3)] == [3, 4]
    assert batch_layer.receive_batch("t.jobs", 3) == []


def test_send_batch_delivers_in_order_and_reports_full_channels(batch_layer):
    """One send_batch reaches plain and process-local channels and group members in order, drops
    for full group members, names the full channels, and a group sent to "once" is empty after."""
    layer = batch_layer
    for member in ("t.local!a", "t.local!b", "t.plain"):
        layer.group_add("room", member)
        layer.group_add("polls", member)
    layer.send("t.local!b", {"n": 0})  # b's list (shared with a) holds 2: one slot left
    for attempt in range(2):  # the first batch prices the lists it had not seen, the second not
        full = layer.send_batch([
            ("group", "room", {"n": 1}),
            ("channel", "t.local!a", {"n": 2}),
            ("group_once", "polls", {"n": 3}),
            ("channel", "t.other", {"n": 4}),
        ])
        assert full == ["t.local!a"]  # the group send to the room took t.local!'s last slot
        assert sorted(drain(layer, "t.local!"), key=lambda f: (f[0], f[1]["n"])) == [
            ("t.local!a", {"n": 1}), ("t.local!b", {"n": 0})]
        assert drain(layer, "t.plain") == [("t.plain", {"n": 1}), ("t.plain", {"n": 3})]
        assert drain(layer, "t.other") == [("t.other", {"n": 4})]
        assert list(layer.group_channels("polls")) == []
        assert sorted(layer.group_channels("room")) == ["t.local!a", "t.local!b", "t.plain"]
        for member in ("t.local!a", "t.local!b", "t.plain"):
            layer.group_add("polls", member)
        layer.send("t.local!b", {"n": 0})


def test_send_batch_to_missing_groups_sends_nothing(batch_layer):
    """Groups without members (most long-poll groups) cost nothing and report nothing."""
    assert batch_layer.send_batch([("group_once", "nobody", {"n": 1}), ("group", "empty", {"n": 2})]) == []


def test_depths_count_what_waits(batch_layer):
    """depths() names every non-empty channel with its waiting messages (a process-local channel's
    under its shared list)."""
    batch_layer.send("d.one", {"n": 1})
    batch_layer.send("d.one", {"n": 2})
    batch_layer.send("t.local!x", {"n": 3})
    assert batch_layer.depths() == {"d.one": 2, "t.local!": 1}


def test_upstream_classes_answer_the_same_questions():
    """The libraries' own classes (CHAT_LAYER_FLAVOR=upstream) report depths and clean up too."""
    layer = upstream.IPCChannelLayer(prefix="chat-upstreamtest")
    try:
        layer.send("u.one", {"n": 1})
        assert layer.depths() == {"u.one": 1}
        layer.check()
    finally:
        layer.remove_storage()
    assert glob.glob(os.path.join(SHM_DIR, "*chat-upstreamtest-*")) == []


def test_ipc_remove_storage_unlinks_every_segment():
    """A stopped deployment's IPC layer leaves no shared memory, semaphore, lock or doorbell behind."""
    layer = IPCChannelLayer(prefix="chat-removetest")
    layer.send("r.one", {"n": 1})
    layer.doorbell.listen(["r.one"])
    assert glob.glob(os.path.join(SHM_DIR, "chat-removetest-*"))
    layer.remove_storage()
    assert glob.glob(os.path.join(SHM_DIR, "*chat-removetest-*")) == []


def test_an_unreachable_redis_is_named_without_its_password():
    """check() says which server does not answer and what to do, and never prints its password."""
    url = "redis://:hunter2@127.0.0.1:%d/0" % free_port()
    with pytest.raises(LayerUnavailable) as raised:
        RedisChannelLayer(hosts=[url], connection_kwargs={"decode_components": True}).check()
    message = str(raised.value)
    assert message.startswith("cannot reach Redis at %s" % url.replace("hunter2", "***"))
    assert "hunter2" not in message and "CHAT_REDIS_URL" in message


@needs_redis
def test_redis_values_round_trip_with_expiry():
    """Values sit on the shard their key hashes to, under their namespace, with a time to live;
    creating an existing key fails."""
    server = RedisServer().start()
    try:
        values = RedisChannelLayer(hosts=[server.url]).values("session")
        assert values.set("k1", "value", 60, only_new=True)
        assert not values.set("k1", "other", 60, only_new=True)
        assert values.get("k1") == "value"
        connection, name = values._where("k1")
        assert name == "asgi:session:k1" and 0 < connection.ttl(name) <= 60
        values.delete("k1")
        assert values.get("k1") is None
    finally:
        server.close()


def test_redis_values_set_and_depth_reads_the_channel_in_the_same_round_trip(batch_layer):
    """set_and_depth stores the value and counts what waits on the channel when both are on one
    shard, and says None (look yourself) when they are not; files never know."""
    if not isinstance(batch_layer, RedisChannelLayer):
        pytest.skip("the Redis layer's values")
    values = batch_layer.values("session")
    channel = "__wait__.daphne.response.x?abc"
    batch_layer.send(channel, {"n": 1})
    same_shard = batch_layer.consistent_hash("k1") == batch_layer.consistent_hash(channel)
    assert values.set_and_depth("k1", "v", 60, channel) == (1 if same_shard else None)
    assert values.get("k1") == "v"
    key = next(k for k in ("k%d" % n for n in range(2, 50))
               if batch_layer.consistent_hash(k) != batch_layer.consistent_hash(channel)) \
        if batch_layer.ring_size > 1 else "k2"
    expected = None if batch_layer.ring_size > 1 else 1
    assert values.set_and_depth(key, "w", 60, channel) == expected and values.get(key) == "w"


@needs_redis
def test_redis_channel_expiry_drops_messages_nobody_waits_for_any_more():
    """A channel given its own expiry (websocket.connect: as long as daphne waits for the accept)
    loses its messages after that long, unseen by any receiver; other channels keep the layer's."""
    server = RedisServer().start()
    try:
        layer = RedisChannelLayer(hosts=[server.url], expiry=60, channel_expiry={"websocket.connect": 1})
        assert (layer.expiry_of("websocket.connect"), layer.expiry_of("websocket.receive")) == (1, 60)
        layer.send("websocket.connect", {"n": 1})
        layer.send("websocket.receive", {"n": 2})
        time.sleep(1.2)
        assert layer.receive(["websocket.connect"]) == (None, None)
        assert layer.receive(["websocket.receive"]) == ("websocket.receive", {"n": 2})
    finally:
        server.close()

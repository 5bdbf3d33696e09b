"""A blocking receive over several Redis shards is woken by the send (pub/sub), not by a timeout."""
import shutil
import threading
import time

import pytest
import redis

from harness.servers import RedisServer, SentinelServers
from my_project.layers import RedisChannelLayer, SentinelChannelLayer
from my_project.layers.redis_scripts import wake_channel

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed (make test installs it)")
WOKEN_WITHIN = 0.5  # seconds; the blocking receives below time out after 5


@pytest.fixture
def shards():
    """Three redis-servers of the test's own."""
    servers = [RedisServer().start() for _ in range(3)]
    try:
        yield servers
    finally:
        for server in servers:
            server.close()


def sharded_layer(servers, blpop_timeout=5):
    return RedisChannelLayer(hosts=[server.url for server in servers], blpop_timeout=blpop_timeout, expiry=30)


def one_channel_per_shard(layer, stem):
    """A channel name on each shard, shard 0's first."""
    found, n = {}, 0
    while len(found) < layer.ring_size:
        found.setdefault(layer.consistent_hash("%s%d" % (stem, n)), "%s%d" % (stem, n))
        n += 1
    return [found[index] for index in range(layer.ring_size)]


def receive_in_thread(layer, channels):
    """Start a blocking receive in a thread; a function joining it: (what it returned or raised, seconds
    it took)."""
    out = []

    def run():
        started = time.time()
        try:
            found = layer.receive(channels, block=True)
        except Exception as exc:
            found = exc
        out.append((found, time.time() - started))
    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def result(timeout=10):
        thread.join(timeout)
        assert out, "the receive did not return within %s s" % timeout
        return out[0]
    return result


def report(capsys, line):
    with capsys.disabled():
        print("\n" + line)


def test_a_send_to_another_shard_wakes_a_blocking_receive(shards):
    """A receive blocked over channels on three shards returns as soon as a message reaches the third
    shard, long before its 5 s timeout (before: a BLPOP on one shard, the others unseen until it
    timed out)."""
    layer, sender = sharded_layer(shards), sharded_layer(shards)
    channels = one_channel_per_shard(layer, "wake.test")
    result = receive_in_thread(layer, channels)
    time.sleep(0.3)  # waiting, subscribed
    sent_at = time.time()
    sender.send(channels[2], {"n": 1})
    (found, _) = result()
    assert found == (channels[2], {"n": 1})
    assert time.time() - sent_at < WOKEN_WITHIN


def test_a_send_between_the_sweep_and_the_wait_is_not_missed(shards):
    """A message sent right after the receive's sweep found nothing (before it waits) wakes it: the
    subscription was made before the sweep."""
    layer, sender = sharded_layer(shards), sharded_layer(shards)
    channels = one_channel_per_shard(layer, "race.test")
    sweep = layer._sweep

    def sweep_then_send(shards_):
        found = sweep(shards_)
        if not found:
            sender.send(channels[1], {"n": 2})
        return found
    layer._sweep = sweep_then_send
    (found, took) = receive_in_thread(layer, channels)()
    assert found == (channels[1], {"n": 2}) and took < WOKEN_WITHIN


def test_every_message_is_received_once_by_two_waiting_workers(shards):
    """Two workers (layers of their own) waiting on the same channels: every message reaches one of
    them, once; a worker woken for a message the other took waits on, and returns
    (None, None) at its timeout."""
    workers = [sharded_layer(shards, blpop_timeout=0.5) for _ in range(2)]
    sender = sharded_layer(shards)
    channels = one_channel_per_shard(layer=sender, stem="both.test")
    received, stop = [], threading.Event()

    def work(layer):
        while not stop.is_set():
            channel, message = layer.receive(channels, block=True)
            if channel is not None:
                received.append((channel, message["n"]))
    threads = [threading.Thread(target=work, args=(layer,), daemon=True) for layer in workers]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    sent = [(channels[n % 3], n) for n in range(60)]
    for channel, n in sent:
        sender.send(channel, {"n": n})
        if n % 10 == 0:
            time.sleep(0.05)
    deadline = time.time() + 5
    while len(received) < len(sent) and time.time() < deadline:
        time.sleep(0.02)
    stop.set()
    for thread in threads:
        thread.join(5)
    assert sorted(received) == sorted(sent)
    started = time.time()
    assert workers[0].receive(channels, block=True) == (None, None)
    assert 0.4 < time.time() - started < 2


def test_wakes_left_unread_by_a_busy_worker_are_dropped(shards):
    """Messages sent while nobody waits are all received afterwards, and the wakes they left in the
    pub/sub buffers do not end a later receive early."""
    layer, sender = sharded_layer(shards, blpop_timeout=0.5), sharded_layer(shards)
    channels = one_channel_per_shard(layer, "busy.test")
    assert layer.receive(channels, block=True) == (None, None)  # subscribed now
    for n in range(6):
        sender.send(channels[n % 3], {"n": n})
    time.sleep(0.1)
    got = sorted(layer.receive(channels, block=True)[1]["n"] for _ in range(6))
    assert got == list(range(6))
    started = time.time()
    assert layer.receive(channels, block=True) == (None, None)
    assert time.time() - started > 0.4


def test_one_shard_publishes_nothing_several_publish_once_per_list():
    """A one-server layer's sends publish no wake (its receives are BLPOPs); a sharded one's publish
    once per list and send, a group send's two members on one process-local list included."""
    servers = [RedisServer().start() for _ in range(2)]
    try:
        single = RedisChannelLayer(hosts=[servers[0].url])
        sharded = RedisChannelLayer(hosts=[server.url for server in servers])
        assert single.scripts._push_fixed[-1] == "" and sharded.scripts._push_fixed[-1] != ""
        listener = redis.StrictRedis.from_url(servers[0].url).pubsub()
        listener.psubscribe("*")
        assert listener.get_message(timeout=1)["type"] == "psubscribe"
        single.send("plain.one", {"n": 1})
        single.send_batch([("channel", "plain.one", {"n": 2})])
        time.sleep(0.2)
        assert listener.get_message(timeout=0.2) is None
        shard0 = [name for name in ("t.local%d!" % n for n in range(20)) if sharded.consistent_hash(name) == 0][0]
        for member in ("a", "b"):
            sharded.group_add("room", shard0 + member)
        sharded.send_group("room", {"n": 3})
        message = listener.get_message(timeout=1)
        assert message["channel"] == wake_channel(sharded.prefix, shard0).encode() == b"asgi:wake:" + shard0.encode()
        assert listener.get_message(timeout=0.2) is None
        listener.close()
    finally:
        for server in servers:
            server.close()


def test_a_lost_shard_raises_as_blpop_did_and_is_subscribed_again(shards):
    """A shard stopped under a waiting receive raises redis.ConnectionError (as a BLPOP on it did;
    the Sentinel layer waits it out instead), and once it is back the next receives are woken by
    sends again, over new pub/sub connections."""
    layer, sender = sharded_layer(shards), sharded_layer(shards)
    channels = one_channel_per_shard(layer, "lost.test")
    result = receive_in_thread(layer, channels)
    time.sleep(0.3)
    shards[1].stop()
    (raised, took) = result()
    assert isinstance(raised, redis.ConnectionError) and took < 2
    assert all(waker.closed for waker in layer._wakers.values())
    shards[1].start()
    result = receive_in_thread(layer, channels)
    time.sleep(0.3)
    sent_at = time.time()
    sender.send(channels[1], {"n": 1})
    assert result()[0] == (channels[1], {"n": 1}) and time.time() - sent_at < WOKEN_WITHIN


def test_a_sentinel_layer_of_two_services_is_woken_and_waits_a_failover_out(capsys):
    """The Sentinel layer's pub/sub connections come from its masters' pools (password included): a
    layer of two services (here both the one group's, which makes two shards) is woken by a send,
    returns (None, None) when the master is killed under its wait, and is woken again on the new
    master, without reconnecting at every receive."""
    group = SentinelServers(password="master-secret", sentinel_password="sentinel-secret").start()
    try:
        kwargs = dict(sentinels=group.sentinels, services=[group.service] * 2, password=group.password,
                      sentinel_password=group.sentinel_password, blpop_timeout=5, expiry=30)
        layer, sender = SentinelChannelLayer(**kwargs), SentinelChannelLayer(**kwargs)
        channels = one_channel_per_shard(layer, "sentinel.wake")
        result = receive_in_thread(layer, channels)
        time.sleep(0.3)
        sent_at = time.time()
        sender.send(channels[1], {"n": 1})
        assert result()[0] == (channels[1], {"n": 1}) and time.time() - sent_at < WOKEN_WITHIN
        result = receive_in_thread(layer, channels)
        time.sleep(0.3)
        killed_at = time.time()
        group.kill_master()
        assert result()[0] == (None, None)
        new_master = group.wait_for_new_master()
        deadline = time.time() + 15
        retry_until(deadline, lambda: sender.send("sentinel.warmup", {}))
        retry_until(deadline, lambda: layer.receive(channels, block=False))
        result = receive_in_thread(layer, channels)
        time.sleep(0.3)
        sent_at = time.time()
        sender.send(channels[0], {"n": 2})
        assert result()[0] == (channels[0], {"n": 2}) and time.time() - sent_at < WOKEN_WITHIN
        report(capsys, "Sentinel layer over two services: woken by a send to the new master %.1f s after the "
               "kill, %.1f ms after the send" % (time.time() - killed_at, (time.time() - sent_at) * 1000))
        # redis-py's Sentinel pools disconnect all their connections whenever one connects after a
        # failover: the pub/sub connections, in pools of their own, and the sweeps' must not keep
        # cutting each other off (thousands of connections per second when they shared a pool).
        layer.blpop_timeout = 0.1
        admin = redis.StrictRedis("127.0.0.1", new_master, password=group.password)
        before = admin.info("stats")["total_connections_received"]
        for _ in range(10):
            assert layer.receive(channels, block=True) == (None, None)
        assert admin.info("stats")["total_connections_received"] - before < 5
    finally:
        group.close()


def retry_until(deadline, call):
    """call() again after each failover error, until the deadline."""
    while True:
        try:
            return call()
        except (redis.ConnectionError, redis.TimeoutError):
            assert time.time() < deadline, "the new master did not answer in time"
            time.sleep(0.1)


def percentile(values, fraction):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(fraction * (len(values) - 1))))]


def test_latency_and_idle_commands_on_three_shards(shards, capsys):
    """A measurement, not a limit: send -> receive latency of a worker thread blocked over three
    shards (300 round trips), and the commands per second it sends the shards while idle."""
    worker, client = sharded_layer(shards, blpop_timeout=0.2), sharded_layer(shards, blpop_timeout=0.2)
    channels = one_channel_per_shard(worker, "measure.work")
    stop = threading.Event()

    def work():
        while not stop.is_set():
            channel, message = worker.receive(channels, block=True)
            if channel is not None:
                worker.send("measure.reply", {"latency": time.time() - message["t"]})
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        time.sleep(0.3)
        latencies = []
        for n in range(300):
            time.sleep(0.002 + (n % 7) * 0.003)  # the worker waits when each message comes
            client.send(channels[n % 3], {"t": time.time()})
            channel, message = client.receive(["measure.reply"], block=True)
            latencies.append(message["latency"])
        admins = [redis.StrictRedis.from_url(server.url) for server in shards]
        time.sleep(0.5)
        for admin in admins:
            admin.config_resetstat()
        time.sleep(3)
        calls = {}
        for admin in admins:
            for name, stat in admin.info("commandstats").items():
                calls[name[len("cmdstat_"):]] = calls.get(name[len("cmdstat_"):], 0) + stat["calls"]
        sent = sum(calls.get(name, 0) for name in ("evalsha", "blpop", "subscribe"))
    finally:
        stop.set()
        thread.join(5)
    report(capsys, "3 shards, blocked worker: send -> receive p50 %.2f ms, p99 %.2f ms, max %.1f ms; idle, it sends "
           "%.1f commands/s (EVALSHA and BLPOP)" % (
               percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000, max(latencies) * 1000, sent / 3))

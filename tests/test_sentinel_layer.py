"""The Sentinel layer: asgiref's conformance, its start-up check, and a killed master survived by the
workers' layer and by daphne's reader (on the interface server's Python)."""
import json
import os
import queue
import shutil
import subprocess
import threading
import time

import pytest
import redis
from django.conf import settings

from harness.servers import RedisServer, SentinelServers, free_port
from my_project.layers import RedisChannelLayer, SentinelChannelLayer
from my_project.layers.base import LayerUnavailable

from .layer_conformance import SentinelConformance  # noqa: F401 (collected here)

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed (make test installs it)")
INTERFACE_PYTHON = os.path.join(settings.CHAT_INTERFACE_VENV, "bin", "python") if settings.CHAT_INTERFACE_VENV else ""
needs_interface = pytest.mark.skipif(not os.path.exists(INTERFACE_PYTHON),
                                     reason="no interface virtualenv (make builds it)")
PASSWORD, SENTINEL_PASSWORD = "master-secret", "sentinel-secret"
RECOVERY_LIMIT = 15  # seconds from a killed master to a send and a receive on the new one


@pytest.fixture
def group():
    """A master, two replicas and three Sentinels, passwords on both; stopped whatever happens."""
    servers = SentinelServers(password=PASSWORD, sentinel_password=SENTINEL_PASSWORD)
    try:
        yield servers.start()
    finally:
        servers.close()


def layer_kwargs(group, **kwargs):
    return dict(sentinels=group.sentinels, services=[group.service], password=PASSWORD,
                sentinel_password=SENTINEL_PASSWORD, **kwargs)


def send_until_sent(layer, channel, message, deadline):
    """Send as the chat client does through a failover: again after every connection error."""
    failures = 0
    while True:
        try:
            layer.send(channel, message)
            return failures
        except (redis.ConnectionError, redis.TimeoutError):
            failures += 1
            assert time.time() < deadline, "no send went through before the deadline"
            time.sleep(0.1)


def report(capsys, line):
    with capsys.disabled():
        print("\n" + line)


def test_sentinels_are_given_as_strings_or_pairs_never_as_hosts():
    """The constructor takes "host:port" strings and (host, port) pairs, and refuses `hosts` (its
    shards are services) and a service name given as a string."""
    layer = SentinelChannelLayer(sentinels=["127.0.0.1:26379", ("::1", "26380"), "[::1]:26381"], services=["a"])
    assert layer.sentinel_addresses == [("127.0.0.1", 26379), ("::1", 26380), ("::1", 26381)]
    assert layer.ring_size == 1 and layer.socket_timeout == layer.blpop_timeout + 5
    with pytest.raises(TypeError):
        SentinelChannelLayer(sentinels=["127.0.0.1:26379"], services=["a"], hosts=["redis://x"])
    with pytest.raises(ValueError):
        SentinelChannelLayer(sentinels=["127.0.0.1:26379"], services="a")


def test_check_names_unreachable_sentinels_without_passwords():
    """check() says in one line that no Sentinel answers, where they were looked for, and never
    prints a password."""
    port = free_port()
    layer = SentinelChannelLayer(sentinels=["127.0.0.1:%d" % port], services=["chat"], password="hunter2",
                                 sentinel_password="hunter3")
    with pytest.raises(LayerUnavailable) as raised:
        layer.check()
    message = str(raised.value)
    assert message.startswith("cannot reach any Sentinel at 127.0.0.1:%d" % port) and "\n" not in message
    assert "hunter" not in message


def test_check_names_a_service_without_master(group):
    """check() passes on a healthy group and names a service the Sentinels do not monitor."""
    SentinelChannelLayer(**layer_kwargs(group)).check()
    layer = SentinelChannelLayer(**dict(layer_kwargs(group), services=["elsewhere"]))
    with pytest.raises(LayerUnavailable) as raised:
        layer.check()
    assert str(raised.value).startswith("Sentinel knows no master for service elsewhere: the Sentinels monitor chat")


def test_a_killed_master_is_replaced_without_a_restart(group, capsys):
    """After a kill -9 of the master, a blocking receive in progress returns (None, None) instead of
    raising (it would end channels' worker), sends raise redis.ConnectionError until Sentinel
    promotes a replica, and then the same layer object sends and receives on the new master within
    RECOVERY_LIMIT seconds."""
    layer = SentinelChannelLayer(**layer_kwargs(group, blpop_timeout=2, expiry=30))
    layer.send("failover.test", {"n": 1})
    assert layer.receive(["failover.test"], block=True) == ("failover.test", {"n": 1})
    waiting = []
    receiver = threading.Thread(target=lambda: waiting.append(layer.receive(["failover.idle"], block=True)))
    receiver.start()
    time.sleep(0.3)  # in BLPOP on the master when it dies
    killed_at = time.time()
    killed = group.kill_master()
    receiver.join(10)
    assert waiting == [(None, None)]
    deadline = killed_at + RECOVERY_LIMIT
    failures = send_until_sent(layer, "failover.test", {"n": 2}, deadline)
    found = (None, None)
    while found == (None, None) and time.time() < deadline:
        found = layer.receive(["failover.test"], block=True)
    assert found == ("failover.test", {"n": 2})
    recovered = time.time() - killed_at
    assert failures > 0 and group.master_port() != killed
    report(capsys, "Sentinel layer: send and receive on the new master %.1f s after the kill (%d failed sends)"
           % (recovered, failures))


class Reader(object):
    """tests/twisted_reader.py on the interface server's Python: daphne's loop over receive_twisted."""

    def __init__(self, class_name, kwargs, channel):
        self.process = subprocess.Popen(
            [INTERFACE_PYTHON, "-m", "tests.twisted_reader", class_name, json.dumps(kwargs), channel],
            cwd=settings.BASE_DIR, env=dict(os.environ, PYTHONWARNINGS="ignore"), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, universal_newlines=True)
        self.lines, self.log = queue.Queue(), []
        threading.Thread(target=self._collect, daemon=True).start()
        assert self.next(20) == {"ready": True}, self.log

    def _collect(self):
        for line in self.process.stdout:
            if line.startswith("{"):
                self.lines.put(json.loads(line))
            else:
                self.log.append(line.rstrip())

    def next(self, timeout):
        """The next thing read (or error met) by the reader, within timeout seconds."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("the reader said nothing for %s s; its log:\n%s" % (timeout, "\n".join(self.log)))

    def close(self):
        self.process.kill()
        self.process.wait(10)


@pytest.fixture
def reader_factory():
    readers = []

    def start(*args):
        readers.append(Reader(*args))
        return readers[-1]
    yield start
    for reader in readers:
        reader.close()


@needs_interface
def test_daphnes_reader_follows_the_new_master(group, reader_factory, capsys):
    """daphne's reader (receive_twisted on the interface's Python) reads a reply sent by a worker's
    layer, and after the master is killed the same reader, never restarted, reads the next reply from
    the new master, without an error reaching daphne (which would pause its reads 5 s)."""
    kwargs = layer_kwargs(group, blpop_timeout=1, expiry=30)
    reader = reader_factory("SentinelChannelLayer", kwargs, "daphne.response.X!")
    layer = SentinelChannelLayer(**kwargs)
    layer.send("daphne.response.X!abc", {"n": 1})
    assert reader.next(10) == {"channel": "daphne.response.X!abc", "message": {"n": 1}}
    time.sleep(0.3)  # in BLMPOP on the master when it dies
    killed_at = time.time()
    group.kill_master()
    send_until_sent(layer, "daphne.response.X!abc", {"n": 2}, killed_at + RECOVERY_LIMIT)
    assert reader.next(killed_at + RECOVERY_LIMIT - time.time()) == {
        "channel": "daphne.response.X!abc", "message": {"n": 2}}
    recovered = time.time() - killed_at
    warnings = [line for line in reader.log if line.startswith("WARNING")]
    assert len(warnings) == 1 and "Lost Redis shard 0" in warnings[0], reader.log
    report(capsys, "Sentinel layer, daphne's reader: the reply sent to the new master read %.1f s after the kill"
           % recovered)


@needs_interface
def test_daphnes_reader_reconnects_to_a_restarted_redis(reader_factory):
    """The plain Redis layer's reader, whose address never changes, reads again once its server is
    back after a restart (txredisapi no longer reconnects by itself)."""
    server = RedisServer().start()
    try:
        kwargs = dict(hosts=[server.url], blpop_timeout=1)
        reader = reader_factory("RedisChannelLayer", kwargs, "daphne.response.Y!")
        layer = RedisChannelLayer(**kwargs)
        layer.send("daphne.response.Y!abc", {"n": 1})
        assert reader.next(10)["message"] == {"n": 1}
        server.stop()
        time.sleep(1.5)
        server.start()
        layer.send("daphne.response.Y!abc", {"n": 2})
        assert reader.next(10) == {"channel": "daphne.response.Y!abc", "message": {"n": 2}}
    finally:
        server.close()

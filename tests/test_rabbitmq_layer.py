"""The RabbitMQ layer: asgiref's conformance suite (tests/layer_conformance.py, collected here), and
beyond it fair dispatch and redelivery, groups across connections, a broker that goes away, daphne's
reader, depths, encryption."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from django.conf import settings

from harness.servers import RABBITMQ_SERVER, RabbitmqServer
from my_project.layers import RabbitmqChannelLayer
from my_project.layers.base import LayerUnavailable

from .layer_conformance import RabbitmqConformance  # noqa: F401 (collected here)
from .test_sentinel_layer import needs_interface, reader_factory  # noqa: F401 (a fixture)

pytestmark = pytest.mark.skipif(not os.path.exists(RABBITMQ_SERVER),
                                reason="rabbitmq-server is not installed (make test installs it)")


@pytest.fixture(scope="module")
def broker():
    server = RabbitmqServer(management=True).start()
    yield server
    server.close()


@pytest.fixture
def make_layer(broker):
    made = []

    def make(**kwargs):
        options = dict(url=broker.url, management_url=broker.management_url, expiry=30, receive_timeout=1,
                       capacity=10, prefix="t%d:" % id(made))
        options.update(kwargs)
        made.append(RabbitmqChannelLayer(**options))
        return made[-1]
    yield make
    if made:
        made[0].flush()
    for layer in made:
        layer.close()


WORKER = """
import sys, time
from my_project.layers import RabbitmqChannelLayer
layer = RabbitmqChannelLayer(url=sys.argv[1], prefix=sys.argv[2], expiry=30, capacity=10, receive_timeout=5)
print(layer.receive(["jobs"], block=True)[1]["n"], flush=True)
time.sleep(60)  # a consumer that runs until it is killed
"""


def test_a_message_goes_to_a_free_worker_and_comes_back_when_its_worker_is_killed(make_layer, broker):
    """A worker busy with a message (it has not asked for the next) is given nothing more: the
    next message waits for a free worker; SIGKILLed in the middle of its consumer, its message is
    delivered again to another worker (the Redis layer loses it)."""
    layer = make_layer()
    busy = subprocess.Popen([sys.executable, "-c", WORKER, broker.url, layer.prefix], cwd=settings.BASE_DIR,
                            stdout=subprocess.PIPE, universal_newlines=True)
    try:
        layer.send("jobs", {"n": 1})
        assert busy.stdout.readline().strip() == "1"
        layer.send("jobs", {"n": 2})
        assert layer.receive(["jobs"], block=True) == ("jobs", {"n": 2})  # not held by the busy one
        os.kill(busy.pid, signal.SIGKILL)
        busy.wait(10)
        assert layer.receive(["jobs"], block=True) == ("jobs", {"n": 1})
    finally:
        busy.kill()
        busy.wait()


def test_a_blocking_receive_wakes_on_a_send(make_layer):
    """A blocking receive is woken by the send (a consumer, no polling): with a 5 s timeout it
    returns long before it."""
    layer, sender = make_layer(receive_timeout=5), make_layer()
    layer.receive(["wake"])  # declared and empty
    timer = threading.Timer(0.3, lambda: sender.send("wake", {"n": 1}))
    timer.start()
    started = time.time()
    assert layer.receive(["wake"], block=True) == ("wake", {"n": 1})
    assert time.time() - started < 2.5
    timer.join()


def test_group_members_are_shared_by_connections(make_layer):
    """Members added and discarded through one process's connection are seen by another's at its
    next group send (the stream of changes), and a new connection reads them from the start."""
    adder, sender = make_layer(), make_layer()
    sender.group_channels("room")  # reading the stream before the changes are made
    adder.group_add("room", "d.response.A!x")
    adder.group_add("room", "d.response.A!y")
    adder.group_add("room", "plain.one")
    adder.group_discard("room", "d.response.A!y")
    time.sleep(0.05)
    assert sorted(sender.group_channels("room")) == ["d.response.A!x", "plain.one"]
    sender.send_group("room", {"n": 1})
    assert adder.receive(["d.response.A!"]) == ("d.response.A!x", {"n": 1})
    assert adder.receive(["plain.one"]) == ("plain.one", {"n": 1})
    late = make_layer(prefix=adder.prefix)
    assert sorted(late.group_channels("room")) == ["d.response.A!x", "plain.one"]


def test_one_group_message_per_queue_names_every_member_there(make_layer):
    """A group send to many sockets of one daphne is one message in its queue (it counts once
    against the capacity), handed out as one reply per socket."""
    layer = make_layer(capacity=2)
    members = ["d.response.B!%d" % n for n in range(50)]
    for member in members:
        layer.group_add("big", member)
    layer.send_group("big", {"n": 1})
    assert layer.channel_statistics("d.response.B!")["messages_pending"] == 1
    got = [layer.receive(["d.response.B!"]) for _ in members]
    assert sorted(channel for channel, _ in got) == sorted(members)
    assert layer.receive(["d.response.B!"]) == (None, None)


def test_a_broker_away_is_a_clear_error_and_everyone_comes_back(make_layer, broker):
    """With the broker stopped, a send raises LayerUnavailable within seconds (never blocks), a
    blocking receive returns nothing instead of raising (a worker's loop goes on); once it is back,
    the same layer objects send and receive again within the backoff."""
    layer = make_layer()
    layer.send("before", {"n": 1})
    assert layer.receive(["before"]) == ("before", {"n": 1})
    broker.stop_broker()
    try:
        for _ in range(3):
            started = time.time()
            with pytest.raises(LayerUnavailable) as raised:
                layer.send("during", {"n": 2})
            assert time.time() - started < 5
            assert "RabbitMQ at 127.0.0.1:%d" % broker.port in str(raised.value)
        assert layer.receive(["during"], block=True) == (None, None)
    finally:
        broker.start_broker()
    deadline, sent = time.time() + 15, False
    while not sent and time.time() < deadline:
        try:
            layer.send("after", {"n": 3})
            sent = True
        except LayerUnavailable:
            time.sleep(0.2)
    assert sent
    assert layer.receive(["after"], block=True) == ("after", {"n": 3})


def test_an_unreachable_broker_is_named_by_check(broker):
    """check() says which broker it could not reach and what to do, without the password."""
    from harness.servers import free_port
    layer = RabbitmqChannelLayer(url="amqp://chat:s3cret@127.0.0.1:%d/chat" % free_port())
    with pytest.raises(LayerUnavailable) as raised:
        layer.check()
    assert "cannot connect to RabbitMQ at 127.0.0.1" in str(raised.value) and "s3cret" not in str(raised.value)


def test_depths_come_from_the_management_api(make_layer):
    """depths() names every non-empty channel (a process-local one under its queue) with what waits."""
    layer = make_layer()
    layer.send("d.one", {"n": 1})
    layer.send("d.one", {"n": 2})
    layer.send("t.local!x", {"n": 3})
    layer.receive(["empty.one"])
    deadline = time.time() + 10  # the management API's figures lag by up to its refresh
    while layer.depths() != {"d.one": 2, "t.local!": 1} and time.time() < deadline:
        time.sleep(0.5)
    assert layer.depths() == {"d.one": 2, "t.local!": 1}


def test_encrypted_messages_round_trip_and_a_wrong_key_drops_them(make_layer):
    """With symmetric_encryption_keys the body is encrypted; a layer with another key drops what it
    cannot read (a warning) instead of failing."""
    layer = make_layer(symmetric_encryption_keys=["one"])
    layer.send("secret", {"text": "hello"})
    assert layer.receive(["secret"]) == ("secret", {"text": "hello"})
    layer.send("secret", {"text": "hello"})
    other = make_layer(prefix=layer.prefix, symmetric_encryption_keys=["two"])
    assert other.receive(["secret"]) == (None, None)


@needs_interface
def test_daphnes_reader_reads_replies_and_survives_a_broker_restart(reader_factory, make_layer, broker):  # noqa: F811
    """daphne's reader (receive_twisted on the interface's Python) reads replies and group messages
    (one per socket), and after the broker restarts the same reader reads again by itself."""
    layer = make_layer(expiry=30)
    kwargs = dict(url=broker.url, prefix=layer.prefix, receive_timeout=1, capacity=layer.capacity)
    reader = reader_factory("RabbitmqChannelLayer", kwargs, "daphne.response.R!")
    layer.send("daphne.response.R!abc", {"n": 1})
    assert reader.next(10) == {"channel": "daphne.response.R!abc", "message": {"n": 1}}
    layer.group_add("g", "daphne.response.R!a")
    layer.group_add("g", "daphne.response.R!b")
    layer.send_group("g", {"n": 2})
    assert sorted([reader.next(10)["channel"], reader.next(10)["channel"]]) == [
        "daphne.response.R!a", "daphne.response.R!b"]
    broker.stop_broker()
    broker.start_broker()
    deadline = time.time() + 20
    while True:  # refused until the layer's backoff lets it try the broker again
        try:
            layer.send("daphne.response.R!abc", {"n": 3})
            break
        except LayerUnavailable:
            assert time.time() < deadline
            time.sleep(0.2)
    assert reader.next(20) == {"channel": "daphne.response.R!abc", "message": {"n": 3}}
    assert not [line for line in reader.log if "Traceback" in line], reader.log


def test_a_receive_for_other_channels_inside_a_consumer_gets_only_theirs(make_layer):
    """A consumer that asks for another channel without blocking (channels' ordering looks at its
    wait channel) gets that channel's message, never one pushed for the worker's own channels,
    which stays for the worker's next receive."""
    layer, sender = make_layer(), make_layer()
    layer.receive(["work"], block=True)  # consuming "work" from now on
    sender.send("work", {"n": 1})
    sender.send("work", {"n": 2})
    sender.send("__wait__.x?y", {"n": 3})
    assert layer.receive(["work"], block=True) == ("work", {"n": 1})
    assert layer.receive(["__wait__.empty"]) == (None, None)  # acknowledges #1: the broker pushes #2
    time.sleep(0.2)
    layer.receive(["__wait__.empty"])  # takes the push in
    assert layer.receive(["__wait__.x?y"]) == ("__wait__.x?y", {"n": 3})
    assert layer.receive(["__wait__.x?y"]) == (None, None)
    assert layer.receive(["work"], block=True) == ("work", {"n": 2})


def test_a_connection_left_idle_past_its_heartbeats_is_replaced_without_an_error(make_layer):
    """The broker closes a connection that missed two heartbeats (daphne's sends on a quiet site):
    the next send finds it gone and connects again at once, instead of failing."""
    layer = make_layer(heartbeat=1)
    layer.send("idle", {"n": 1})
    time.sleep(4)  # no I/O: the broker gives the connection up after about 2 s
    layer.send("idle", {"n": 2})
    assert [layer.receive(["idle"])[1]["n"] for _ in range(2)] == [1, 2]

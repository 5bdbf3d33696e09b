"""A worker's in-flight record, and the reclaimer that sends a dead worker's message back."""
import io
import os
from unittest import mock

import pytest
from asgiref.inmemory import ChannelLayer
from channels.message import Message
from django.test import override_settings

from ops import inflight
from ops.management.commands import reclaim as reclaim_command

DEAD, LIVE = 4000001, 4000002


def alive(pid):
    return pid == LIVE


def message(channel="websocket.receive", **content):
    content = dict({"reply_channel": "daphne.response.x!y", "path": "/ws/rooms/lobby/", "order": 3,
                    "text": '{"type": "ping"}'}, **content)
    return Message(content, channel, channel_layer=None)


@pytest.fixture
def directory(tmpdir):
    return os.path.join(str(tmpdir), "inflight")


def test_a_running_consumer_holds_its_message_and_lets_go_after(directory):
    """While the consumer runs, the record holds its channel and message; afterwards it is empty."""
    record = inflight.Record(directory, "workers-realtime_00", pid=DEAD)
    seen = []

    def consumer(msg):
        seen.append(inflight.read(record.path))
    record.around(consumer)(message(text="é"))
    assert seen == [("websocket.receive", message(text="é").content)]
    assert inflight.read(record.path) is None


def test_a_consumer_that_raises_leaves_nothing_held(directory):
    """A consumer's exception empties the record too: the client was answered (server_error)."""
    record = inflight.Record(directory, "workers-realtime_00", pid=DEAD)
    with pytest.raises(RuntimeError):
        record.around(mock.Mock(side_effect=RuntimeError("bad release")))(message())
    assert inflight.read(record.path) is None


def test_a_clean_exit_removes_the_record(directory):
    """A process that exits by itself (SIGTERM) leaves no file behind."""
    record = inflight.Record(directory, "workers-realtime_00", pid=DEAD)
    record.close()
    assert os.listdir(directory) == []


def test_a_dead_process_message_goes_back_onto_its_channel(directory):
    """The message a gone process held is sent back once, marked, and its record removed; a live
    process's record and an empty one's message are left alone."""
    layer = ChannelLayer()
    held = inflight.Record(directory, "workers-realtime_00", pid=DEAD)
    held.hold("websocket.receive", message().content)
    busy = inflight.Record(directory, "workers-realtime_01", pid=LIVE)
    busy.hold("websocket.receive", message(order=9).content)
    assert inflight.reclaim(directory, layer, is_alive=alive) == 1
    channel, content = layer.receive(["websocket.receive"])
    assert content == dict(message().content, **{inflight.RECLAIMED: 1})
    assert layer.receive(["websocket.receive"]) == (None, None)
    assert os.listdir(directory) == [os.path.basename(busy.path)]


def test_a_message_that_killed_its_second_worker_too_is_dropped(directory):
    """A message sent back MAX_RECLAIMS times already is not sent again: it may be what kills workers."""
    layer = ChannelLayer()
    record = inflight.Record(directory, "workers-realtime_00", pid=DEAD)
    record.hold("websocket.receive", dict(message().content, **{inflight.RECLAIMED: inflight.MAX_RECLAIMS}))
    assert inflight.reclaim(directory, layer, is_alive=alive) == 0
    assert layer.receive(["websocket.receive"]) == (None, None)
    assert os.listdir(directory) == []


def test_a_new_process_never_overwrites_its_predecessor_record(directory):
    """Records are named by process name and pid: a restarted worker starts a record of its own."""
    first = inflight.Record(directory, "workers-realtime_00", pid=DEAD)
    second = inflight.Record(directory, "workers-realtime_00", pid=LIVE)
    assert first.path != second.path


def test_the_listener_speaks_supervisors_protocol(directory):
    """`manage.py reclaim` answers READY, and on a worker's EXITED event sends its message back and
    answers RESULT OK, writing nothing else to the protocol's stdout."""
    layer = ChannelLayer()
    record = inflight.Record(directory, "workers-realtime_00", pid=DEAD)
    record.hold("websocket.receive", message().content)
    payload = "processname:workers-realtime_00 groupname:realtime from_state:RUNNING expected:0 pid:%d" % DEAD
    stdin = io.StringIO("ver:3.0 server:supervisor serial:1 pool:reclaim poolserial:1 "
                        "eventname:PROCESS_STATE_EXITED len:%d\n%s" % (len(payload), payload))
    stdout = io.StringIO()
    layers = {"default": mock.Mock(channel_layer=layer)}
    with override_settings(CHAT_PATHS=mock.Mock(inflight=directory)), \
            mock.patch.object(reclaim_command, "channel_layers", layers), \
            mock.patch.object(inflight, "alive", alive), mock.patch("sys.stdin", stdin), \
            mock.patch.object(reclaim_command.os, "fdopen", return_value=stdout), \
            mock.patch.object(reclaim_command.os, "dup2"), mock.patch.object(reclaim_command.os, "dup"), \
            mock.patch("sys.stdout", io.StringIO()):
        with pytest.raises(KeyError):  # the test's stdin ends: no more events
            reclaim_command.Command().handle()
    assert stdout.getvalue().startswith("READY\nRESULT 2\nOKREADY\n")
    assert layer.receive(["websocket.receive"])[1]["order"] == 3

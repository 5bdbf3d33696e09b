"""A worker's in-flight record, and the reclaimer that sends a dead worker's message back."""
import io
import os
import time
from unittest import mock

import pytest
from asgiref.inmemory import ChannelLayer
from channels.message import Message
from django.test import override_settings

from ops import inflight
from ops.management.commands import reclaim as reclaim_command


def message(channel="websocket.receive", **content):
    content = dict({"reply_channel": "daphne.response.x!y", "path": "/ws/rooms/lobby/", "order": 3,
                    "text": '{"type": "ping"}'}, **content)
    return Message(content, channel, channel_layer=None)


def die(record):
    """What the kernel does to a SIGKILLed worker's record: its descriptor (and lock) goes, the file stays."""
    os.close(record.fd)


def received(layer, timeout=5.0):
    """The next message on websocket.receive, waiting a little for the reclaimer's thread."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        channel, content = layer.receive(["websocket.receive"])
        if channel is not None:
            return content
        time.sleep(0.01)
    return None


@pytest.fixture
def directory(tmpdir):
    return os.path.join(str(tmpdir), "inflight")


def test_a_running_consumer_holds_its_message_and_lets_go_after(directory):
    """While the consumer runs, the record holds its channel and message; afterwards it is empty."""
    record = inflight.Record(directory, "workers-realtime_00")
    seen = []

    def consumer(msg):
        seen.append(inflight.read(record.fd))
    record.around(consumer)(message(text="é"))
    assert seen == [("websocket.receive", message(text="é").content)]
    assert inflight.read(record.fd) is None


def test_a_consumer_that_raises_leaves_nothing_held(directory):
    """A consumer's exception empties the record too: the client was answered (server_error)."""
    record = inflight.Record(directory, "workers-realtime_00")
    with pytest.raises(RuntimeError):
        record.around(mock.Mock(side_effect=RuntimeError("bad release")))(message())
    assert inflight.read(record.fd) is None


def test_a_message_that_cannot_be_held_still_runs(directory):
    """A record that cannot be written (a message the codec refuses) never keeps the consumer from running."""
    record = inflight.Record(directory, "workers-realtime_00")
    consumer = mock.Mock(return_value="ran")
    assert record.around(consumer)(message(text=object())) == "ran"
    assert inflight.read(record.fd) is None


def test_a_reclaimable_message_is_held_as_the_layer_hands_it_over(directory):
    """receiving() holds a chat frame the moment the layer returns it (before routing), the
    consumer's around() lets go of it without writing it again; other channels are not held, and a
    frame no consumer takes is let go by unheld()."""
    record = inflight.Record(directory, "workers-realtime_00")
    frame = message()
    answers = iter([("websocket.receive", frame.content), ("http.request", {"path": "/"}),
                    ("websocket.receive", frame.content)])
    receive = record.receiving(lambda channels, block=False: next(answers))
    assert receive(["websocket.receive"], block=True) == ("websocket.receive", frame.content)
    assert inflight.read(record.fd) == ("websocket.receive", frame.content)
    with mock.patch.object(record, "hold", wraps=record.hold) as hold:
        record.around(lambda msg: None)(frame)
    assert hold.call_count == 0 and inflight.read(record.fd) is None
    receive(["http.request"])
    assert inflight.read(record.fd) is None
    receive(["websocket.receive"])
    record.unheld()
    assert inflight.read(record.fd) is None


def test_an_exit_between_the_layer_and_the_consumer_leaves_the_message_to_the_reclaimer(directory):
    """channels' worker exits at once on SIGTERM until its Message is built: a record holding a
    message then stays behind, unlocked, for the reclaimer to send back (a clean exit removes it)."""
    record = inflight.Record(directory, "workers-realtime_00")
    frame = message()
    record.receiving(lambda channels, block=False: ("websocket.receive", frame.content))(["websocket.receive"])
    record.close()
    fd = inflight.acquire(record.path)
    assert fd is not None and inflight.read(fd) == ("websocket.receive", frame.content)
    os.close(fd)


def test_a_live_worker_record_is_locked_and_a_clean_exit_removes_it(directory):
    """Nobody takes a live worker's record; one that exits by itself (SIGTERM) leaves no file behind."""
    record = inflight.Record(directory, "workers-realtime_00")
    assert inflight.acquire(record.path) is None
    record.close()
    assert os.listdir(directory) == []


def test_a_dead_process_message_goes_back_onto_its_channel(directory):
    """The message a gone process held is sent back once, marked, and its record removed; a live
    process's record is left alone."""
    layer = ChannelLayer()
    held = inflight.Record(directory, "workers-realtime_00", pid=1)
    held.hold("websocket.receive", message().content)
    die(held)
    busy = inflight.Record(directory, "workers-realtime_01", pid=2)
    busy.hold("websocket.receive", message(order=9).content)
    assert inflight.reclaim(directory, layer) == 1
    channel, content = layer.receive(["websocket.receive"])
    assert content == dict(message().content, **{inflight.RECLAIMED: 1})
    assert layer.receive(["websocket.receive"]) == (None, None)
    assert os.listdir(directory) == [os.path.basename(busy.path)]


def test_a_message_that_killed_its_second_worker_too_is_dropped(directory):
    """A message sent back MAX_RECLAIMS times already is not sent again: it may be what kills workers."""
    layer = ChannelLayer()
    record = inflight.Record(directory, "workers-realtime_00")
    record.hold("websocket.receive", dict(message().content, **{inflight.RECLAIMED: inflight.MAX_RECLAIMS}))
    die(record)
    assert inflight.reclaim(directory, layer) == 0
    assert layer.receive(["websocket.receive"]) == (None, None)
    assert os.listdir(directory) == []


def test_a_new_process_never_overwrites_its_predecessor_record(directory):
    """Records are named by process name and pid: a restarted worker starts a record of its own."""
    first = inflight.Record(directory, "workers-realtime_00", pid=1)
    second = inflight.Record(directory, "workers-realtime_00", pid=2)
    assert first.path != second.path


def test_the_reclaimer_sends_back_as_the_worker_dies(directory):
    """The reclaimer waits on each record's lock: a worker's death (its lock gone) sends its
    message back without any supervisord event."""
    layer = ChannelLayer()
    record = inflight.Record(directory, "workers-realtime_00")
    reclaimer = inflight.Reclaimer(directory, layer).start()
    while record.path not in reclaimer.watched:
        time.sleep(0.01)
    record.hold("websocket.receive", message().content)
    assert received(layer, timeout=0.5) is None  # alive: nothing is taken
    die(record)
    assert received(layer)["order"] == 3


def test_the_listener_speaks_supervisors_protocol(directory):
    """`manage.py reclaim` answers READY, and RESULT OK to each event, writing nothing else to the
    protocol's stdout; the message a worker died with goes back onto its channel."""
    layer = ChannelLayer()
    record = inflight.Record(directory, "workers-realtime_00")
    record.hold("websocket.receive", message().content)
    die(record)
    payload = "processname:workers-realtime_00 groupname:realtime from_state:RUNNING expected:0 pid:1"
    stdin = io.StringIO("ver:3.0 server:supervisor serial:1 pool:reclaim poolserial:1 "
                        "eventname:PROCESS_STATE_EXITED len:%d\n%s" % (len(payload), payload))
    stdout = io.StringIO()
    layers = {"default": mock.Mock(channel_layer=layer)}
    with override_settings(CHAT_PATHS=mock.Mock(inflight=directory)), \
            mock.patch.object(reclaim_command, "channel_layers", layers), mock.patch("sys.stdin", stdin), \
            mock.patch.object(reclaim_command.os, "fdopen", return_value=stdout), \
            mock.patch.object(reclaim_command.os, "dup2"), mock.patch.object(reclaim_command.os, "dup"), \
            mock.patch("sys.stdout", io.StringIO()):
        with pytest.raises(KeyError):  # the test's stdin ends: no more events
            reclaim_command.Command().handle()
    assert stdout.getvalue().startswith("READY\nRESULT 2\nOKREADY\n")
    assert received(layer)["order"] == 3

"""The IPC layer's marshalled stores: crash safety of the two slots, the format shared by both
Pythons, and old-code processes (pickled stores) beside new ones during a rollout."""
import os
import subprocess
import textwrap

import pytest
from django.conf import settings

from my_project.layers import IPCChannelLayer, codec
from my_project.layers.doorbell import Doorbell
from my_project.layers.ipc import (
    SHM_DIR, ChannelStore, GroupStore, LegacyChannelStore, MarshalStoreMixin, remove_segments, segment
)

INTERFACE_PYTHON = os.path.join(settings.CHAT_INTERFACE_VENV, "bin", "python") if settings.CHAT_INTERFACE_VENV else ""
PREFIX = "chat-storetest"


@pytest.fixture
def store():
    remove_segments(PREFIX)
    yield ChannelStore(segment(PREFIX, "messages-v2"), 64 * 1024)
    remove_segments(PREFIX)


@pytest.fixture
def layer():
    remove_segments(PREFIX)
    yield IPCChannelLayer(prefix=PREFIX, capacity=5, message_memory=1024 * 1024, group_memory=1024 * 1024)
    remove_segments(PREFIX)


def test_store_round_trips_its_values(store):
    """What a pass writes the next pass reads back: bytes, floats, non-ASCII channel names."""
    assert store.append_within([("caf\u00e9.x", b"\x00\xff", 1), ("b", b"2", 1)], 2e9) == []
    assert store.get_value() == {"caf\u00e9.x": [(b"\x00\xff", 2e9)], "b": [(b"2", 2e9)]}
    assert store.append_within([("b", b"3", 1)], 2e9) == [0]  # full at capacity 1


def test_passes_alternate_slots(store):
    """Each write goes to the slot the pass did not read, one generation up."""
    store.append_within([("a", b"1", 5)], 2e9)
    first = store._newest()
    store.append_within([("a", b"2", 5)], 2e9)
    second = store._newest()
    assert second[0] == 1 - first[0] and second[1] == first[1] + 1


def test_a_write_killed_mid_copy_leaves_the_previous_value(store):
    """A frame whose end was never written (its writer died mid-copy) does not count: the other
    slot's value is read, whole, and the next pass writes over the torn one."""
    store.append_within([("a", b"1", 5)], 2e9)
    slot, generation, _ = store._newest()
    torn = (1 - slot) * store.slot_size
    MarshalStoreMixin.FRAME.pack_into(store.mmap, torn, generation + 1, 3)
    store.mmap[torn + MarshalStoreMixin.FRAME.size:torn + MarshalStoreMixin.FRAME.size + 3] = b"{\xfa\x01"
    assert store.get_value() == {"a": [(b"1", 2e9)]}
    store.append_within([("a", b"2", 5)], 2e9)
    assert store.get_value() == {"a": [(b"1", 2e9), (b"2", 2e9)]}


def test_a_full_store_names_the_setting(store):
    """A value larger than a slot is refused with what to do, and the store keeps its value."""
    store.append_within([("a", b"1", 5)], 2e9)
    with pytest.raises(RuntimeError, match="raise its memory size"):
        store.append_within([("a", b"x" * store.slot_size, 5)], 2e9)
    assert store.get_value() == {"a": [(b"1", 2e9)]}


def test_group_store_takes_live_members():
    """Memberships marshal too (dicts of floats); expired members are left out and dropped."""
    remove_segments(PREFIX)
    try:
        groups = GroupStore(segment(PREFIX, "groups-v2"), 64 * 1024)
        groups.add("room", "a!1", 2e9)
        groups.add("room", "b!2", 1.0)
        assert groups.take_members({"room": False}) == {"room": ["a!1"]}
        assert groups.get_value() == {"room": {"a!1": 2e9}}
    finally:
        remove_segments(PREFIX)


@pytest.mark.skipif(not os.path.exists(INTERFACE_PYTHON), reason="no interface virtualenv (make builds it)")
def test_the_interface_python_reads_and_writes_the_same_store(store):
    """daphne's Python (3.13) reads what a worker's (3.7) wrote, and the reverse: marshal's format
    differs across versions for code objects only."""
    store.append_within([("w.\u00e9", "\u00e9t\u00e9".encode("utf8"), 5), ("w.\u00e9", b"\x00\x80", 5)], 2e9)
    script = textwrap.dedent("""
        from my_project.layers.ipc import ChannelStore
        store = ChannelStore(%r, 64 * 1024)
        print(repr(store.pop_first(["w.\\u00e9"], limit=5)))
        store.append_within([("d.\\u00e9!", b"\\xff" * 3, 5)], 1.5e9 + 0.25)
    """ % segment(PREFIX, "messages-v2"))
    result = subprocess.run([INTERFACE_PYTHON, "-c", script], cwd=settings.BASE_DIR, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, timeout=60,
                            env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == repr(("w.\u00e9", ["\u00e9t\u00e9".encode("utf8"), b"\x00\x80"]))
    assert store.get_value() == {"d.\u00e9!": [(b"\xff" * 3, 1.5e9 + 0.25)]}


def old_code_listener(layer, channels):
    """A doorbell as the code before the marshalled stores announces it: no format tag."""
    old = Doorbell(layer.doorbell.directory)
    old.listen(channels)
    return old


def test_a_channel_an_old_process_waits_on_is_written_where_it_reads(layer):
    """During a rollout daphne runs the old code: replies to it go to the pickled store, which its
    code reads; channels only new code waits on go to the marshalled one."""
    old = old_code_listener(layer, ["daphne.response.old!"])
    layer.doorbell.listen(["websocket.receive"])
    layer.send("daphne.response.old!c1", {"text": "hi"})
    layer.send("websocket.receive", {"text": "new"})
    assert list(layer.legacy_messages.get_value()) == ["daphne.response.old!"]
    assert list(layer.message_store.get_value()) == ["websocket.receive"]
    assert layer.receive(["daphne.response.old!"]) == ("daphne.response.old!c1", {"text": "hi"})
    old.close()


def test_what_an_old_process_sent_is_received(layer):
    """A message in the pickled store (an old daphne's send) reaches a new worker, before the newer
    ones of the same channel, and the old store is empty afterwards."""
    old_store = LegacyChannelStore(segment(PREFIX, "messages"), 1024 * 1024)
    old_store.append_within([("websocket.receive", codec.pack({"n": 1}), 5)], 2e9)
    layer.send("websocket.receive", {"n": 2})
    assert layer.legacy_messages.holds_anything()
    assert layer.receive(["websocket.receive"]) == ("websocket.receive", {"n": 1})
    assert not layer.legacy_messages.holds_anything()
    assert layer.receive(["websocket.receive"]) == ("websocket.receive", {"n": 2})
    assert layer.depths() == {}


def test_groups_are_shared_with_old_processes_while_there_are_any(layer):
    """With an old-code worker around, a join goes to both stores (its group sends read the old
    one), not with only an old daphne; a group send of new code reaches members from either, once
    each."""
    daphne = old_code_listener(layer, ["daphne.response.old!"])
    layer.group_add("room", "chat.a")
    assert layer.legacy_groups.get_value() == {}
    daphne.close()
    old = old_code_listener(layer, ["chat.old"])
    layer.doorbell._peers = (None, 0.0, {})  # forget the listing cached in this process
    layer.group_add("room", "chat.a")
    assert layer.legacy_groups.get_value() == layer.group_store.get_value()
    old.close()
    layer.doorbell._peers = (None, 0.0, {})  # forget the listing cached in this process
    layer.group_add("room", "chat.b")
    assert list(layer.legacy_groups.get_value()["room"]) == ["chat.a"]
    assert sorted(layer.group_channels("room")) == ["chat.a", "chat.b"]
    layer.send_group("room", {"n": 1})
    assert layer.depths() == {"chat.a": 1, "chat.b": 1}
    layer.group_discard("room", "chat.a")
    assert layer.group_channels("room") == ["chat.b"]


def test_an_unused_old_store_costs_no_pass(layer):
    """Without old-code processes the pickled stores stay empty and are never locked."""
    layer.send("quiet.x", {"n": 1})
    layer.group_add("room", "quiet.x")
    layer.send_group("room", {"n": 2})
    assert not layer.legacy_messages.holds_anything() and not layer.legacy_groups.holds_anything()
    assert not os.path.exists(os.path.join(SHM_DIR, segment(PREFIX, "messages") + ".lock")) or \
        layer.legacy_messages.get_value() == {}


def test_old_code_workers_are_told_from_an_old_daphne(layer):
    """Channel sessions need the old code's directory while an old-code worker waits on a worker
    channel; an old daphne (its own "!" channel only) reads no sessions."""
    daphne = old_code_listener(layer, ["daphne.response.old!"])
    layer.doorbell.listen(["websocket.receive"])
    assert not layer.old_code_workers()
    worker = old_code_listener(layer, ["websocket.receive", "http.request"])
    layer.doorbell._peers = (None, 0.0, {})  # forget the listing cached in this process
    assert layer.old_code_workers()
    worker.close()
    daphne.close()

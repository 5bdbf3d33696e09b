"""The send_batch kinds work on any ASGI layer: one call per send where the layer cannot batch."""
from asgiref.inmemory import ChannelLayer

from my_project.layers.base import CHANNEL, GROUP, GROUP_ONCE, send_batch


def test_any_layer_gets_one_call_per_send_in_order():
    """On a layer without the send_batch extension (the in-memory one) each kind does what the
    project's layers do at once: channel sends report full channels, group sends drop for full
    members, a group sent to once is empty afterwards."""
    layer = ChannelLayer(capacity=2)
    for member in ("m.a", "m.b"):
        layer.group_add("room", member)
        layer.group_add("polls", member)
    layer.send("m.b", {"n": 0})
    layer.send("m.b", {"n": 0})  # full
    full = send_batch(layer, [
        (GROUP, "room", {"n": 1}),
        (CHANNEL, "m.b", {"n": 2}),
        (GROUP_ONCE, "polls", {"n": 3}),
        (CHANNEL, "other", {"n": 4}),
    ])
    assert full == ["m.b"]
    assert layer.receive(["m.a"]) == ("m.a", {"n": 1})
    assert layer.receive(["m.a"]) == ("m.a", {"n": 3})
    assert layer.receive(["m.b"]) == ("m.b", {"n": 0})
    assert layer.receive(["m.b"]) == ("m.b", {"n": 0})
    assert layer.receive(["m.b"]) == (None, None)
    assert layer.receive(["other"]) == ("other", {"n": 4})
    assert list(layer.group_channels("polls")) == []
    assert sorted(layer.group_channels("room")) == ["m.a", "m.b"]


def test_a_layer_that_batches_is_asked_to():
    """A layer naming the send_batch extension gets the whole list in one call."""
    class Batching(object):
        extensions = ["send_batch"]
        calls = []

        def send_batch(self, sends):
            self.calls.append(sends)
            return []

    sends = [(CHANNEL, "c", {}), (GROUP, "g", {})]
    layer = Batching()
    assert send_batch(layer, sends) == []
    assert layer.calls == [sends]

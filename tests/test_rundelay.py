"""manage.py rundelay (ops/management/commands/rundelay.py): channels' delay server, outage-proof."""
from channels.delay.models import DelayedMessage

from my_project.layers.base import LayerUnavailable
from ops.management.commands.rundelay import Worker


class _Nothing(object):
    @staticmethod
    def exists():
        return False


def test_the_delay_server_waits_an_outage_of_the_layer_out(monkeypatch):
    """An outage error of the layer (its server restarting) makes the delay server wait and run
    again, where upstream's exits (and supervisord restarts it in a loop until it gives up)."""
    calls = []

    class Layer(object):
        OUTAGES = (LayerUnavailable,)

        def receive(self, channels, block=False):
            calls.append(channels)
            if len(calls) == 1:
                raise LayerUnavailable("RabbitMQ at 127.0.0.1:1 is unreachable")
            server.termed = True  # the second run: as after a SIGTERM
            return None, None
    monkeypatch.setattr(DelayedMessage.objects, "is_due", lambda: _Nothing())
    monkeypatch.setattr(Worker, "RETRY_DELAY", 0)
    server = Worker(channel_layer=Layer(), signal_handlers=False)
    server.run()
    assert calls == [["asgi.delay"], ["asgi.delay"]]

"""The checks before a deployment starts, for its own RabbitMQ: the server installed, its ports free."""
import socket
from unittest import mock

import pytest
from channels import DEFAULT_CHANNEL_LAYER, channel_layers
from django.conf import settings
from django.test import override_settings

from my_project.paths import Paths
from ops import capacity, preflight, programs
from ops.exceptions import DeploymentError

BROKER = [programs.named("epmd"), programs.named("rabbitmq")]


def test_a_missing_broker_is_named_with_its_package():
    """Without the broker installed (epmd not on PATH, the server not at its absolute path, whatever
    PATH holds), the check names the package that brings both."""
    fix = r"is not installed: run `apt-get install rabbitmq-server` as root"
    with pytest.raises(DeploymentError, match="epmd " + fix):
        preflight.binary("epmd", "/nonexistent", programs.named("epmd").package)
    with pytest.raises(DeploymentError, match="/nonexistent/rabbitmq-server " + fix):
        preflight.binary("/nonexistent/rabbitmq-server", "/usr/bin:/bin", programs.named("rabbitmq").package)


@pytest.mark.parametrize("which", ["amqp", "management", "epmd", "dist"])
def test_a_held_port_of_the_block_is_named(tmp_path, monkeypatch, which):
    """Any of the broker's four ports held by another program stops the start with one line naming
    the port, what it is for, and the way out."""
    monkeypatch.setattr(preflight, "binary", lambda *args: "/bin/true")  # installed or not, the ports are checked
    paths = Paths(str(tmp_path / "var"))
    port = getattr(paths.rabbitmq_ports, which)
    with socket.socket() as holder:
        try:
            holder.bind(("127.0.0.1", port))
        except OSError:
            pytest.skip("port %d is taken on this machine already" % port)
        holder.listen(1)
        with override_settings(CHAT_PATHS=paths), pytest.raises(DeploymentError) as failed:
            preflight.check({"PATH": "/usr/bin"}, BROKER)
    assert str(failed.value).startswith("port %d, where this deployment runs its RabbitMQ (%s; " % (port, which))
    assert str(failed.value).endswith("is in use: stop what listens there, or give CHAT_AMQP_URL")
    assert "\n" not in str(failed.value)


def test_too_few_daphnes_for_max_sockets_is_refused_with_the_fix():
    """A deployment whose daphnes cannot hold CHAT_MAX_SOCKETS at the descriptor limit does not
    start: one line naming how many daphnes it takes and the two ways out."""
    with pytest.raises(DeploymentError) as failed:
        preflight.sockets(capacity.plan(20000, 20000, 1))
    assert str(failed.value) == ("CHAT_MAX_SOCKETS=20000 needs 2 daphne processes at 19,900 descriptors each: "
                                 "set DAPHNE_PROCS=2 or lower MAX_SOCKETS")
    preflight.sockets(capacity.plan(20000, 20000, 2))  # the default holds it


def test_a_reply_list_too_small_for_max_sockets_is_refused():
    """The tuned layer's reply lists follow CHAT_MAX_SOCKETS by default; set below it, a broadcast to
    a full room would be dropped in part, and the start is refused with the setting to change."""
    planned = capacity.plan(20000, 20000, 2)
    layer = channel_layers[DEFAULT_CHANNEL_LAYER].channel_layer
    assert layer.get_capacity("daphne.response.abc!") >= 2 * settings.CHAT_MAX_SOCKETS
    with mock.patch.object(type(layer), "get_capacity", return_value=5000):
        with pytest.raises(DeploymentError, match=r"^CHAT_RESPONSE_CAPACITY=5000 is below CHAT_MAX_SOCKETS=20000"):
            preflight.sockets(planned)

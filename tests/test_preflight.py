"""The checks before a deployment starts, for its own RabbitMQ: the server installed, its ports free."""
import socket

import pytest
from django.test import override_settings

from my_project.paths import Paths
from ops import preflight, programs
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

"""Every path and machine-wide name of a deployment derives from its var dir, in one place."""
import os

from my_project.paths import Paths


def test_everything_lives_under_the_var_dir(tmp_path):
    """Files, sockets and directories of a deployment are inside its (absolute) var dir."""
    paths = Paths(str(tmp_path / "var"))
    assert paths.var == os.path.abspath(str(tmp_path / "var"))
    for value in vars(paths).values():
        assert value.startswith(paths.var)
    assert paths.daphne_socket(3).startswith(paths.run) and paths.daphne_socket(3).endswith("03.sock")


def test_machine_wide_names_differ_between_deployments():
    """Two var dirs get their own IPC prefix and redis port (below the ephemeral ports); the same
    var dir, relative or absolute, always the same ones."""
    one, other = Paths("/srv/chat/var"), Paths("/srv/chat2/var")
    assert one.ipc_prefix != other.ipc_prefix and one.redis_port != other.redis_port
    assert Paths("/srv/chat/./var").ipc_prefix == one.ipc_prefix
    assert one.ipc_prefix.startswith("chat-")
    for paths in (one, other):
        assert 20000 <= paths.redis_port < 30000


def ephemeral_ports():
    """The kernel's range for outgoing connections' ports (Linux's default when it cannot be read)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            low, high = map(int, ports.read().split())
    except OSError:
        low, high = 32768, 60999
    return low, high


def test_the_rabbitmq_ports_are_a_block_of_their_own():
    """The deployment's own broker gets four distinct consecutive ports (AMQP, management, epmd,
    distribution), the same for the same var dir, below the ephemeral ports and never one of
    redis_port's, whatever the var dir; two var dirs get their own ports and node name."""
    one, other = Paths("/srv/chat/var"), Paths("/srv/chat2/var")
    assert Paths("/srv/chat/./var").rabbitmq_ports == one.rabbitmq_ports
    assert Paths("/srv/chat/./var").rabbitmq_node == one.rabbitmq_node
    assert one.rabbitmq_ports != other.rabbitmq_ports and one.rabbitmq_node != other.rabbitmq_node
    assert one.rabbitmq_node.startswith("chat-") and one.rabbitmq_node.endswith("@localhost")
    low = ephemeral_ports()[0]
    for n in range(2000):
        paths = Paths("/srv/chat%d/var" % n)
        ports = paths.rabbitmq_ports
        assert list(ports) == list(range(ports.amqp, ports.amqp + 4))
        assert 10000 <= ports.amqp and ports.dist < min(20000, low)
        assert paths.redis_port not in ports

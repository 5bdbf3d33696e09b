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

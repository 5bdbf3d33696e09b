"""Bad settings and a broken environment: one line saying what to do, nothing left running."""
import socket
import subprocess

import pytest

from harness.servers import free_port
from harness.sites import REPO, Site
from ops import preflight
from ops.exceptions import DeploymentError


@pytest.fixture
def bare_site():
    """A deployment directory that is never started by the fixture itself."""
    site = Site()
    try:
        yield site
    finally:
        site.close()


def one_line_error(result):
    """The command failed with a single 'error: ...' line and no traceback."""
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


@pytest.mark.parametrize("name, value, expected", [
    ("CHAT_LAYER", "kafka", "CHAT_LAYER='kafka' is not one of: ipc, redis"),
    ("CHAT_PORT", "eighty", "CHAT_PORT='eighty' is not a whole number"),
    ("CHAT_PORT", "70000", "CHAT_PORT=70000 is out of range"),
    ("CHAT_DEBUG", "maybe", "CHAT_DEBUG='maybe' is not a boolean"),
    ("CHAT_DATABASE_URL", "mysql://x/y", "use sqlite:///path.db or postgres://"),
    ("CHAT_REDIS_URL", "localhost:6379", "is not a redis:// URL"),
    ("CHAT_WORKERS_REALTIME", "0", "CHAT_WORKERS_REALTIME=0 is out of range"),
    ("CHAT_TOPOLOGY", "mixed", "CHAT_TOPOLOGY='mixed' is not one of: split, asgi, inverse"),
    ("CHAT_WSGI_PATHS", "accounts", "CHAT_WSGI_PATHS: 'accounts' is not a path prefix"),
    ("CHAT_LAYER", "inmemory", "CHAT_LAYER=inmemory is the Deploying guide's single-process fallback"),
    ("CHAT_ROLE", "dispatcher", "CHAT_ROLE='dispatcher' is not one of: all, balancer, interface"),
    ("CHAT_ROLE", "interface", "CHAT_ROLE=interface serves other hosts: set CHAT_HOST_ADDRESS"),
    ("CHAT_ROLE", "balancer", "CHAT_ROLE=balancer needs the interface hosts' addresses"),
    ("CHAT_POOLS", "realtime,fast", "CHAT_POOLS=realtime,fast: give some of realtime,background,default"),
])
def test_malformed_setting(bare_site, name, value, expected):
    """Each malformed CHAT_* variable stops `serve` with one line naming it."""
    bare_site.env.update({"CHAT_LAYER": "redis", name: value})
    assert expected in one_line_error(bare_site.manage("serve"))
    assert bare_site.leftovers() == []


def test_missing_secret_key_outside_debug(bare_site):
    """With DEBUG off and no CHAT_SECRET_KEY, every command refuses to start."""
    del bare_site.env["CHAT_SECRET_KEY"]
    assert "CHAT_SECRET_KEY is required" in one_line_error(bare_site.manage("check"))


def test_port_in_use(bare_site):
    """A taken public port is reported with the fix, before any process starts."""
    assert bare_site.manage("migrate", "-v0").returncode == 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", bare_site.port))
        sock.listen(1)
        line = one_line_error(bare_site.manage("serve"))
    assert "port %d is in use" % bare_site.port in line
    assert bare_site.leftovers() == []


def test_unreachable_redis(bare_site):
    """A REDIS_URL nobody answers at is reported with the fix, before any process starts."""
    assert bare_site.manage("migrate", "-v0").returncode == 0
    url = "redis://127.0.0.1:%d/0" % free_port()
    bare_site.env.update({"CHAT_LAYER": "redis", "CHAT_REDIS_URL": url})
    assert "cannot reach Redis at %s" % url in one_line_error(bare_site.manage("serve"))
    assert bare_site.leftovers() == []


def test_unmigrated_database(bare_site):
    """A database without the schema is reported, not discovered by the first request."""
    assert "unapplied migrations" in one_line_error(bare_site.manage("serve"))


def test_start_up_failure_leaves_nothing_running(bare_site):
    """When start-up does not complete, every process that did start is stopped again."""
    assert bare_site.manage("migrate", "-v0").returncode == 0
    line = one_line_error(bare_site.manage("serve", "--timeout", "1"))
    assert "did not come up within 1 s" in line
    assert bare_site.leftovers() == []


def test_missing_binaries_are_named():
    """A missing nginx or redis-server is named with the package that provides it."""
    with pytest.raises(DeploymentError, match=r"nginx is not installed: run `apt-get install nginx-light`"):
        preflight.binary("nginx", "/nonexistent", "nginx-light")
    with pytest.raises(DeploymentError, match=r"redis-server is not installed"):
        preflight.binary("redis-server", "/nonexistent", "redis-server")


def test_no_interpreter():
    """Without a CPython 3.6-3.9 the set-up says so in one line."""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "PYENV_ROOT": "/nonexistent"}
    result = subprocess.run(["bin/find-python"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True)
    if result.returncode == 0:
        pytest.skip("this machine has a 3.6-3.9 on /usr/bin")
    assert one_line_error(result).startswith("error: no CPython 3.6-3.9 found")
    env["PYTHON"] = "/bin/true"
    result = subprocess.run(["bin/find-python"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True)
    assert "PYTHON=/bin/true is not a CPython 3.6-3.9" in one_line_error(result)

"""The harness serves the benchmarks too, which run without Django settings."""
import os
import shutil
import socket
import subprocess
import sys
from unittest import mock

import pytest
from django.conf import settings

from harness.servers import BrokerExited, RabbitmqServer, port_open


def test_the_harness_imports_without_django_settings():
    """`python -m bench.run` imports harness/ before any settings exist (a module that reads
    settings at import would stop the bench)."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE" and not k.startswith("CHAT_")}
    imports = "import harness.client, harness.servers, harness.sites, harness.stats"
    result = subprocess.run([sys.executable, "-c", imports],
                            cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    assert result.returncode == 0, result.stdout


def test_a_broker_whose_port_was_taken_starts_on_fresh_ones():
    """A test broker whose distribution port is taken before it binds (by another process) fails at
    once, not after the 60 s wait, and the harness starts a fresh node on fresh ports."""
    if shutil.which("epmd") is None:
        pytest.skip("rabbitmq-server is not installed (make test installs it)")
    server = RabbitmqServer()
    taken = server.dist_port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen(1)
        try:
            server.start()
            assert server.dist_port != taken and port_open(server.port)
        finally:
            server.close()


def test_a_broker_that_cannot_start_leaves_nothing_running():
    """When the broker never comes up, start() stops the epmd it started before raising: a test
    class whose set-up raises is never torn down, and its epmd outlived the run."""
    if shutil.which("epmd") is None:
        pytest.skip("rabbitmq-server is not installed (make test installs it)")
    server = RabbitmqServer()
    with mock.patch.object(RabbitmqServer, "start_broker", side_effect=BrokerExited("no broker")):
        with pytest.raises(BrokerExited):
            server.start()
    assert server.processes == [] and not port_open(server.epmd_port)

"""supervisord.conf's epmd and RabbitMQ, started for real: the broker the settings' URL names, on
loopback alone, and nothing of it left once supervisord stops."""
import os
import signal
import subprocess
import time

import pytest
from django.conf import settings
from django.test import override_settings

from harness.servers import wait_for
from my_project.paths import Paths
from ops import programs, render, supervisor
from ops.deployment import processes_of
from ops.environment import environment

from .test_base_settings import layer

pika = pytest.importorskip("pika")
pytestmark = pytest.mark.skipif(not os.path.exists(programs.RABBITMQ_SERVER),
                                reason="rabbitmq-server is not installed (make test installs it)")
BROKER = [programs.named("epmd"), programs.named("rabbitmq")]
PASSWORD = "broker-test-password"


def listeners(ports):
    """{port: [local addresses]} of the listening TCP sockets on these ports."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in rows.read().splitlines()[1:]:
                local, state = row.split()[1], row.split()[3]
                address, port = local.split(":")
                if state == "0A" and int(port, 16) in ports:  # 0A: LISTEN
                    found.setdefault(int(port, 16), []).append(address)
    return found


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1 and ::1, as /proc/net spells them


@pytest.fixture
def broker(tmp_path):
    """The two programs alone under the project's supervisord.conf, in a var dir of their own."""
    paths = Paths(str(tmp_path / "var"))
    for directory in (paths.run, paths.log):
        os.makedirs(directory)
    with override_settings(CHAT_PATHS=paths, CHAT_LAYER_SERVER="rabbitmq", CHAT_RABBITMQ_PASSWORD=PASSWORD):
        env = environment()
        render.write(BROKER)
    env.update({programs.start_variable(program): "true" if program in BROKER else "false"
                for program in programs.PROGRAMS})
    process = subprocess.Popen(["supervisord", "-n", "-c", os.path.join(settings.BASE_DIR, "supervisord.conf")],
                               env=env, cwd=settings.BASE_DIR, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield paths, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in processes_of(paths.run):
            os.kill(pid, signal.SIGKILL)


def test_the_supervised_broker_serves_the_layers_url_on_loopback_alone(broker):
    """epmd and RabbitMQ come up under supervisord; the URL the settings give the layer connects;
    every port of the block listens on loopback only; once supervisord stops, no process of theirs
    (no daemonized epmd either) is left and the ports are free."""
    paths, process = broker

    def running():
        try:
            states = {info["name"]: info["statename"]
                      for info in supervisor.processes(supervisor.connect(paths.supervisor_socket))}
        except Exception:  # supervisord is not listening yet
            return False
        assert supervisor.FATAL not in states.values(), states
        return states.get("epmd") == states.get("rabbitmq") == supervisor.RUNNING
    wait_for(running, 60, "epmd and rabbitmq to run")
    config = layer(CHAT_VAR_DIR=paths.var, CHAT_LAYER="rabbitmq", CHAT_RABBITMQ_PASSWORD=PASSWORD)["config"]
    ports = paths.rabbitmq_ports

    def connects():
        try:
            pika.BlockingConnection(pika.URLParameters(config["url"])).close()
        except pika.exceptions.AMQPConnectionError:  # booting: it listens a moment after RUNNING
            return False
        return True
    wait_for(connects, 30, "the broker to accept the layer's URL")
    wait_for(lambda: set(listeners(ports)) == set(ports), 30, "the management API to listen")
    assert all(set(addresses) <= LOOPBACK for addresses in listeners(ports).values()), listeners(ports)

    started = time.time()
    process.send_signal(signal.SIGTERM)
    process.wait(60)
    assert processes_of(paths.run) == []
    assert listeners(ports) == {}
    print("broker stopped with supervisord in %.1f s" % (time.time() - started))

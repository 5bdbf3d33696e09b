"""The Django-free settings: the RabbitMQ layer's URLs and password, and its settings' one-line errors."""
import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from my_project.env import PLATFORM_NAMES, PREFIX
from my_project.paths import Paths

INTERFACE_PYTHON = os.path.join(settings.CHAT_INTERFACE_VENV, "bin", "python") if settings.CHAT_INTERFACE_VENV else ""
# What each run prints: the layer's settings as every process of the deployment computes them.
SHOW = ("import json; from my_project import base_settings as s; print(json.dumps({"
        "'backend': s.CHANNEL_LAYERS['default']['BACKEND'], 'config': s.CHANNEL_LAYERS['default']['CONFIG'], "
        "'server': s.CHAT_LAYER_SERVER, 'password': s.CHAT_RABBITMQ_PASSWORD}))")


def run(python=sys.executable, **variables):
    """base_settings in a process of its own with these CHAT_* variables alone: CompletedProcess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX) and k not in PLATFORM_NAMES}
    env.update(dict(CHAT_VAR_DIR=settings.CHAT_PATHS.var), **variables)
    code = ("import sys; from my_project.env import ImproperlyConfigured\n"
            "try:\n    %s\nexcept ImproperlyConfigured as exc:\n    sys.exit('error: %%s' %% exc)" % SHOW)
    return subprocess.run([python, "-c", code], cwd=settings.BASE_DIR, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)


def layer(python=sys.executable, **variables):
    result = run(python, **variables)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def error(**variables):
    result = run(**variables)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_the_own_broker_is_reached_on_the_var_dirs_ports():
    """Without CHAT_AMQP_URL the layer is the deployment's own broker: user and vhost chat on the
    var dir's loopback AMQP port, its management API on the next one."""
    found = layer(CHAT_LAYER="rabbitmq", CHAT_SECRET_KEY="k")
    ports, password = Paths(settings.CHAT_PATHS.var).rabbitmq_ports, found["password"]
    assert found["backend"] == "my_project.layers.RabbitmqChannelLayer" and found["server"] == "rabbitmq"
    assert found["config"]["url"] == "amqp://chat:%s@127.0.0.1:%d/chat" % (password, ports.amqp)
    assert found["config"]["management_url"] == "http://chat:%s@127.0.0.1:%d" % (password, ports.management)
    assert {"expiry", "capacity", "channel_capacity"} <= set(found["config"])


def test_the_password_derives_from_the_secret_key():
    """The derived password is the same at every computation, and on the interface server's Python
    too (daphne has the environment alone); another secret key gives another; CHAT_RABBITMQ_PASSWORD
    wins, %-encoded in the URLs."""
    first = layer(CHAT_LAYER="rabbitmq", CHAT_SECRET_KEY="k")
    assert layer(CHAT_LAYER="rabbitmq", CHAT_SECRET_KEY="k") == first
    assert len(first["password"]) == 64 and int(first["password"], 16)  # HMAC-SHA256, in hex
    assert layer(CHAT_LAYER="rabbitmq", CHAT_SECRET_KEY="other")["password"] != first["password"]
    given = layer(CHAT_LAYER="rabbitmq", CHAT_SECRET_KEY="k", CHAT_RABBITMQ_PASSWORD="p@ss:w/rd")
    assert given["password"] == "p@ss:w/rd"
    assert given["config"]["url"].startswith("amqp://chat:p%40ss%3Aw%2Frd@127.0.0.1:")
    assert layer(CHAT_LAYER="rabbitmq", CHAT_RABBITMQ_PASSWORD="pw")["password"] == "pw"  # no secret key needed
    if os.path.exists(INTERFACE_PYTHON):
        assert layer(INTERFACE_PYTHON, CHAT_LAYER="rabbitmq", CHAT_SECRET_KEY="k") == first


def test_an_external_broker_runs_no_server():
    """With CHAT_AMQP_URL the layer uses that broker (its management API only when given), and the
    deployment runs no broker of its own; encryption keys reach the layer as Redis' do."""
    url = "amqp://u:p@broker.example:5672/chat"
    found = layer(CHAT_LAYER="rabbitmq", CHAT_AMQP_URL=url, CHAT_LAYER_ENCRYPTION_KEYS="a,b")
    assert found["server"] is None and found["config"]["url"] == url
    assert "management_url" not in found["config"]
    assert found["config"]["symmetric_encryption_keys"] == ["a", "b"]
    found = layer(CHAT_LAYER="rabbitmq", CHAT_AMQP_URL=url, CHAT_RABBITMQ_API="http://u:p@broker.example:15672")
    assert found["config"]["management_url"] == "http://u:p@broker.example:15672"


@pytest.mark.parametrize("variables, expected", [
    ({}, "CHAT_LAYER=rabbitmq derives its broker's password from CHAT_SECRET_KEY: set it"),
    ({"CHAT_SECRET_KEY": "k", "CHAT_LAYER_FLAVOR": "upstream"}, "CHAT_LAYER_FLAVOR=upstream has no RabbitMQ layer"),
    ({"CHAT_AMQP_URL": "broker:5672"}, "CHAT_AMQP_URL='broker:5672' is not an AMQP URL: give one like amqp://"),
    ({"CHAT_RABBITMQ_PASSWORD": "a#b"}, "CHAT_RABBITMQ_PASSWORD holds a space, a '#'"),
    ({"CHAT_RABBITMQ_PASSWORD": "a b"}, "CHAT_RABBITMQ_PASSWORD holds a space, a '#'"),
    ({"CHAT_SECRET_KEY": "k", "CHAT_ROLE": "worker"}, "CHAT_LAYER=rabbitmq on a host of a cluster (CHAT_ROLE=worker): "
                                                      "set CHAT_AMQP_URL"),
])
def test_rabbitmq_settings_errors_say_what_to_set(variables, expected):
    """Each RabbitMQ setting that cannot work stops every process with one line saying what to set."""
    assert error(CHAT_LAYER="rabbitmq", **variables).startswith("error: " + expected)


def test_reply_lists_follow_max_sockets_and_the_connect_queue_holds_a_burst():
    """A daphne's reply list holds two broadcasts to a room of CHAT_MAX_SOCKETS (all its members on
    one daphne), so no broadcast is dropped for want of room; websocket.connect holds a daphne's
    share of CHAT_MAX_SOCKETS on the Redis layer, whose connects expire when daphne stops waiting
    for them (CHAT_CONNECT_TIMEOUT), and a burst of hundreds elsewhere; both may be set outright."""
    config = layer(CHAT_LAYER="redis")["config"]
    assert config["channel_capacity"]["daphne.response*"] == 40000
    assert config["channel_capacity"]["websocket.connect"] == 10000
    assert config["channel_expiry"] == {"websocket.connect": 30}
    config = layer(CHAT_LAYER="redis", CHAT_CONNECT_TIMEOUT="12")["config"]
    assert config["channel_expiry"] == {"websocket.connect": 12}
    for others in ({"CHAT_LAYER": "ipc"}, {"CHAT_LAYER": "redis", "CHAT_LAYER_FLAVOR": "upstream"}):
        config = layer(**others)["config"]
        assert config.get("channel_capacity", {"websocket.connect": 500})["websocket.connect"] == 500
        assert "channel_expiry" not in config
    capacities = layer(CHAT_LAYER="redis", CHAT_MAX_SOCKETS="1000")["config"]["channel_capacity"]
    assert capacities["daphne.response*"] == 5000 and capacities["websocket.connect"] == 500
    capacities = layer(CHAT_LAYER="redis", CHAT_RESPONSE_CAPACITY="7", CHAT_CONNECT_CAPACITY="9")["config"]
    assert capacities["channel_capacity"]["daphne.response*"] == 7
    assert capacities["channel_capacity"]["websocket.connect"] == 9

"""Which programs a deployment starts is decided in one place, and supervisord is told through the
environment."""
import json
import os
import re
import subprocess
import sys
from unittest import mock

import pytest
from django.conf import settings
from django.test import override_settings

from ops import programs
from ops.environment import environment


def supervisord_conf():
    with open(os.path.join(settings.BASE_DIR, "supervisord.conf")) as conf:
        return conf.read()


def names(started):
    return [program.name for program in started]


ONE_MACHINE = ["daphne", "workers-realtime", "workers-background", "workers-default", "delay", "reclaim",
               "gunicorn", "nginx"]
# A layer with "redelivery" (RabbitMQ) gives a dead worker's message to another worker itself: no reclaimer.
ON_RABBITMQ = [name for name in ONE_MACHINE if name != "reclaim"]


def test_one_machine_runs_everything_but_a_foreign_layer_server():
    """All programs of the site run on one machine; a redis-server, or RabbitMQ and its epmd, only
    when the layer is the deployment's own; never a Sentinel or PostgreSQL (those are a cluster's hosts)."""
    with override_settings(CHAT_LAYER_SERVER=None):
        assert names(programs.started_here()) == ONE_MACHINE
    with override_settings(CHAT_LAYER_SERVER="redis"):
        assert names(programs.started_here()) == ["redis"] + ONE_MACHINE
    with override_settings(CHAT_LAYER_SERVER="rabbitmq", CHAT_LAYER="rabbitmq"), \
            mock.patch("ops.programs.layer_extensions", return_value=["redelivery"]):
        assert names(programs.started_here()) == ["epmd", "rabbitmq"] + ON_RABBITMQ


def started_for(**variables):
    """The programs one machine starts with these CHAT_* variables alone, as `manage.py serve`
    computes them (settings and all, in a process of their own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_") and k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(CHAT_VAR_DIR=settings.CHAT_PATHS.var, CHAT_SECRET_KEY="k", **variables)
    code = ("import django, json; django.setup(); from ops import programs; "
            "print(json.dumps([p.name for p in programs.started_here()]))")
    result = subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert result.returncode == 0, result.stdout
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize("variables, server", [
    ({"CHAT_LAYER": "rabbitmq"}, ["epmd", "rabbitmq"]),
    ({"CHAT_LAYER": "rabbitmq", "CHAT_AMQP_URL": "amqp://u:p@broker:5672/chat"}, []),
    ({"CHAT_LAYER": "redis"}, ["redis"]),
    ({"CHAT_LAYER": "redis", "CHAT_REDIS_URL": "redis://cache:6379/0"}, []),
    ({"CHAT_LAYER": "ipc"}, []),
])
def test_the_layer_decides_which_server_runs(variables, server):
    """LAYER=rabbitmq runs the deployment's own broker (epmd, then RabbitMQ), but not with an
    AMQP_URL; the other layers never run one (Redis its own redis-server without a REDIS_URL)."""
    assert started_for(**variables) == server + (ON_RABBITMQ if variables["CHAT_LAYER"] == "rabbitmq" else ONE_MACHINE)


def test_each_role_runs_its_own_programs():
    """A cluster's host runs its role's programs only, a worker host its pools only (and the
    reclaimer where the realtime pool runs)."""
    expected = {
        "balancer": ["nginx"], "interface": ["daphne"], "web": ["gunicorn"], "database": ["postgres"],
        "redis": ["redis"],
        "worker": ["workers-realtime", "workers-background", "workers-default", "delay", "reclaim"],
    }
    for role, wanted in expected.items():
        for server in (None, "rabbitmq"):  # a broker of the deployment's own is one machine's only
            with override_settings(CHAT_ROLE=role, CHAT_LAYER_SERVER=server):
                assert names(programs.started_here()) == wanted, role
    with override_settings(CHAT_ROLE="worker", CHAT_POOLS=["background"]):
        assert names(programs.started_here()) == ["workers-background"]


def test_a_redis_host_runs_a_sentinel_when_the_layer_uses_them():
    """With CHAT_REDIS_SENTINELS (the layer's "sentinels"), a Redis host runs its Sentinel too."""
    layers = {"default": dict(settings.CHANNEL_LAYERS["default"], CONFIG={"sentinels": ["10.0.0.1:26379"]})}
    with override_settings(CHAT_ROLE="redis", CHANNEL_LAYERS=layers):
        assert names(programs.started_here()) == ["redis", "sentinel"]


def test_supervisord_is_told_what_to_start():
    """Every program of supervisord.conf gets its CHAT_START_* variable, true exactly for the
    programs started here; supervisord.conf reads each of them."""
    text = supervisord_conf()
    with override_settings(CHAT_LAYER_SERVER=None):
        env = environment({"PATH": "/usr/bin"})
    for program in programs.PROGRAMS:
        variable = programs.start_variable(program)
        assert "[program:%s]" % program.name in text or "[eventlistener:%s]" % program.name in text
        assert "autostart=%%(ENV_%s)s" % variable in text
        assert env[variable] == ("true" if program.name in ONE_MACHINE else "false")


def test_environment_carries_the_paths_and_counts_supervisord_reads():
    """Every %(ENV_CHAT_*)s of supervisord.conf is in the environment serve hands it."""
    wanted = set(re.findall(r"%\(ENV_(CHAT_[A-Z_]+)\)s", supervisord_conf()))
    assert wanted <= set(environment({"PATH": "/usr/bin"}))


def test_the_broker_gets_its_names_from_the_var_dir():
    """supervisord's epmd and RabbitMQ get the var dir's ports, node name, configuration and data
    dir, and the server itself rather than Debian's wrapper."""
    paths = settings.CHAT_PATHS
    env = environment({"PATH": "/usr/bin"})
    assert (env["CHAT_EPMD_PORT"], env["CHAT_RABBITMQ_DIST_PORT"]) == (
        str(paths.rabbitmq_ports.epmd), str(paths.rabbitmq_ports.dist))
    assert (env["CHAT_RABBITMQ_NODE"], env["CHAT_RABBITMQ_CONF"], env["CHAT_RABBITMQ_DATA"]) == (
        paths.rabbitmq_node, paths.rabbitmq_conf, paths.rabbitmq_data)
    assert env["CHAT_RABBITMQ_SERVER"] == programs.named("rabbitmq").binary == "/usr/lib/rabbitmq/bin/rabbitmq-server"
    text = supervisord_conf()
    assert "-kernel inet_dist_use_interface {127,0,0,1}" in text and 'ERL_EPMD_ADDRESS="127.0.0.1"' in text

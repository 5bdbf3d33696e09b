"""Which programs a deployment starts is decided in one place, and supervisord is told through the
environment."""
import os
import re

from django.conf import settings
from django.test import override_settings

from ops import programs
from ops.environment import environment


def supervisord_conf():
    with open(os.path.join(settings.BASE_DIR, "supervisord.conf")) as conf:
        return conf.read()


def names(started):
    return [program.name for program in started]


ONE_MACHINE = ["daphne", "workers-realtime", "workers-background", "workers-default", "delay", "gunicorn", "nginx"]


def test_one_machine_runs_everything_but_a_foreign_layer_server():
    """All programs of the site run on one machine; a redis-server only when the layer is the
    deployment's own; never a Sentinel or PostgreSQL (those are a cluster's hosts)."""
    with override_settings(CHAT_LAYER_SERVER=None):
        assert names(programs.started_here()) == ONE_MACHINE
    with override_settings(CHAT_LAYER_SERVER="redis"):
        assert names(programs.started_here()) == ["redis"] + ONE_MACHINE


def test_each_role_runs_its_own_programs():
    """A cluster's host runs its role's programs only, a worker host its pools only."""
    expected = {
        "balancer": ["nginx"], "interface": ["daphne"], "web": ["gunicorn"], "database": ["postgres"],
        "redis": ["redis"],
        "worker": ["workers-realtime", "workers-background", "workers-default", "delay"],
    }
    for role, wanted in expected.items():
        with override_settings(CHAT_ROLE=role, CHAT_LAYER_SERVER=None):
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
        assert "[program:%s]" % program.name in text
        assert "autostart=%%(ENV_%s)s" % variable in text
        assert env[variable] == ("true" if program.name in ONE_MACHINE else "false")


def test_environment_carries_the_paths_and_counts_supervisord_reads():
    """Every %(ENV_CHAT_*)s of supervisord.conf is in the environment serve hands it."""
    wanted = set(re.findall(r"%\(ENV_(CHAT_[A-Z_]+)\)s", supervisord_conf()))
    assert wanted <= set(environment({"PATH": "/usr/bin"}))

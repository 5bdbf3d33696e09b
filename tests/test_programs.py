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


def test_one_machine_runs_everything_but_a_foreign_layer_server():
    """All programs run on one machine; a redis-server only when the layer is the deployment's own."""
    with override_settings(CHAT_LAYER_SERVER=None):
        assert names(programs.started_here()) == [p.name for p in programs.PROGRAMS if p.name != "redis"]
    with override_settings(CHAT_LAYER_SERVER="redis"):
        assert names(programs.started_here()) == [p.name for p in programs.PROGRAMS]


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
        assert env[variable] == ("false" if program.name == "redis" else "true")


def test_environment_carries_the_paths_and_counts_supervisord_reads():
    """Every %(ENV_CHAT_*)s of supervisord.conf is in the environment serve hands it."""
    wanted = set(re.findall(r"%\(ENV_(CHAT_[A-Z_]+)\)s", supervisord_conf()))
    assert wanted <= set(environment({"PATH": "/usr/bin"}))

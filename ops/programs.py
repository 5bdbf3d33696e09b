"""The programs of supervisord.conf, and which of them this deployment starts."""
import collections

from django.conf import settings

Program = collections.namedtuple("Program", "name binary package")
Program.__doc__ = """A supervisord program: `binary`, when not None, must be on PATH (apt `package`)."""

# In supervisord.conf's order. supervisord starts a program when CHAT_START_<NAME> says so
# (environment.py sets it from started_here()).
PROGRAMS = (
    Program("redis", "redis-server", "redis-server"),
    Program("daphne", None, None),
    Program("workers-realtime", None, None),
    Program("workers-background", None, None),
    Program("workers-default", None, None),
    Program("delay", None, None),
    Program("gunicorn", None, None),
    Program("nginx", "nginx", "nginx-light"),
)


def started_here():
    """The programs this deployment starts: all of them on one machine, except a layer server
    (redis) that is not the deployment's own (CHAT_LAYER_SERVER). The one place that decides what
    runs where: per-host roles choose their programs here."""
    return [program for program in PROGRAMS
            if program.name != "redis" or settings.CHAT_LAYER_SERVER == program.name]


def start_variable(program):
    """The environment variable supervisord.conf reads as the program's autostart."""
    return "CHAT_START_%s" % program.name.upper().replace("-", "_")

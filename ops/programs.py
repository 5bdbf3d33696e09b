"""The programs of supervisord.conf, and which of them this deployment starts."""
import collections

from django.conf import settings

Program = collections.namedtuple("Program", "name binary package layer_server")
Program.__doc__ = """A supervisord program: `binary`, when not None, must be on PATH (apt `package`);
a `layer_server` runs only where it is the layer's own (settings.CHAT_LAYER_SERVER)."""
Program.__new__.__defaults__ = (None, None, False)  # binary, package, layer_server

# In supervisord.conf's order. supervisord starts a program when CHAT_START_<NAME> says so
# (environment.py sets it from started_here()).
PROGRAMS = (
    Program("redis", "redis-server", "redis-server", layer_server=True),
    Program("daphne"),
    Program("workers-realtime"),
    Program("workers-background"),
    Program("workers-default"),
    Program("delay"),
    Program("gunicorn"),
    Program("nginx", "nginx", "nginx-light"),
)


def started_here():
    """The programs this deployment starts: all of them on one machine, but a layer server only
    when it is the deployment's own (CHAT_LAYER_SERVER), and no gunicorn in the asgi shape
    (CHAT_TOPOLOGY). The one place that decides what runs where: per-host roles choose here."""
    return [program for program in PROGRAMS
            if (not program.layer_server or settings.CHAT_LAYER_SERVER == program.name)
            and not (program.name == "gunicorn" and settings.CHAT_TOPOLOGY == "asgi")]


def start_variable(program):
    """The environment variable supervisord.conf reads as the program's autostart."""
    return "CHAT_START_%s" % program.name.upper().replace("-", "_")

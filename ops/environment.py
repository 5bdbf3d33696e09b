"""The one environment every process of a deployment inherits: the caller's, plus what supervisord.conf reads."""
import os
import resource
import sys

from channels import DEFAULT_CHANNEL_LAYER, channel_layers
from django.conf import settings

from . import database, programs, releases

MAX_FDS = 65536
# Every process of a deployment carries this variable, set to its run dir (supervisord.conf puts its
# pid file there): deployment.processes_of finds them all by it, whatever became of supervisord.
MARK = "CHAT_RUN_DIR"


def file_limit():
    """Descriptors each process may hold (supervisord's minfds, nginx's worker_rlimit_nofile): each
    WebSocket costs daphne one and nginx two. The hard limit, up to MAX_FDS."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return MAX_FDS if hard == resource.RLIM_INFINITY else min(MAX_FDS, hard)


def interface_python():
    """The Python daphne runs on: the interface's virtualenv (a current CPython) when it was built
    and the layer's messages cross Python versions (its "cross_python" extension), else the
    workers' own."""
    python = os.path.join(settings.CHAT_INTERFACE_VENV, "bin", "python") if settings.CHAT_INTERFACE_VENV else None
    if python and os.path.exists(python) and \
            "cross_python" in channel_layers[DEFAULT_CHANNEL_LAYER].channel_layer.extensions:
        return python
    return sys.executable


def environment(base=None):
    """The environment `manage.py serve` gives supervisord, and supervisord every program: they all
    compute the same settings from it. supervisord.conf cannot compute, so the values it uses are
    spelled out here from the settings (the defaults included)."""
    env = dict(os.environ if base is None else base)
    started = programs.started_here()
    paths = settings.CHAT_PATHS
    path = [os.path.dirname(sys.executable)] + env.get("PATH", "").split(os.pathsep)
    path += [d for d in ("/usr/local/sbin", "/usr/sbin", "/sbin") if d not in path]  # nginx, redis
    env.update({
        "PATH": os.pathsep.join(path),
        "CHAT_VAR_DIR": paths.var,
        MARK: paths.run,
        "CHAT_LOG_DIR": paths.log,
        "CHAT_SUPERVISOR_SOCKET": paths.supervisor_socket,
        "CHAT_GUNICORN_BIND": settings.CHAT_NETWORK.gunicorn_bind(),
        "CHAT_NGINX_CONF": paths.nginx_conf,
        "CHAT_NGINX_PREFIX": paths.nginx_prefix,
        "CHAT_REDIS_CONF": paths.redis_conf,
        "CHAT_SENTINEL_CONF": paths.sentinel_conf,
        "CHAT_REDIS_AUTORESTART": "false" if programs.named("sentinel") in started else "true",
        "CHAT_RABBITMQ_SERVER": programs.RABBITMQ_SERVER,
        "CHAT_RABBITMQ_CONF": paths.rabbitmq_conf,
        "CHAT_RABBITMQ_PLUGINS": paths.rabbitmq_plugins,
        "CHAT_RABBITMQ_DATA": paths.rabbitmq_data,
        "CHAT_RABBITMQ_NODE": paths.rabbitmq_node,
        "CHAT_RABBITMQ_DIST_PORT": str(paths.rabbitmq_ports.dist),
        "CHAT_EPMD_PORT": str(paths.rabbitmq_ports.epmd),
        "CHAT_CURRENT_RELEASE_LINK": releases.current_link(),  # bin/in-release starts workers there
        "CHAT_MINFDS": str(file_limit()),
        "CHAT_DAPHNE_PYTHON": interface_python(),
        "CHAT_DAPHNE_PROCS": str(settings.CHAT_DAPHNE_PROCS),
        "CHAT_WORKERS_REALTIME": str(settings.CHAT_WORKERS_REALTIME),
        "CHAT_WORKERS_BACKGROUND": str(settings.CHAT_WORKERS_BACKGROUND),
        "CHAT_WORKERS_DEFAULT": str(settings.CHAT_WORKERS_DEFAULT),
        "CHAT_GUNICORN_WORKERS": str(settings.CHAT_GUNICORN_WORKERS),
    })
    # supervisord.conf names every program's command; only a database host can compute its own.
    env["CHAT_POSTGRES_COMMAND"] = database.command() if programs.named("postgres") in started else "false"
    env.update({programs.start_variable(program): "true" if program in started else "false"
                for program in programs.PROGRAMS})
    return env

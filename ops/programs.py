"""The programs of supervisord.conf, and which of them this host starts."""
import collections

from channels import DEFAULT_CHANNEL_LAYER, channel_layers
from django.conf import settings

Program = collections.namedtuple("Program", "name role binary package layer_server pool clients")
Program.__doc__ = """A supervisord program of a host of `role` ("all": of one machine only): `binary`, when
not None, must be on PATH (or at that absolute path; apt `package`); a program of the `layer_server`
it names runs on one machine only where that server is the layer's own (settings.CHAT_LAYER_SERVER);
a worker `pool` (settings.CHAT_POOLS); `clients`: what it connects to ("layer", "database"), checked
before it starts."""
Program.__new__.__defaults__ = (None, None, None, None, ())

# The Debian package's server itself: /usr/sbin/rabbitmq-server is a wrapper that switches to the
# rabbitmq user and its system-wide files.
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"

# In supervisord.conf's order. supervisord starts a program when CHAT_START_<NAME> says so
# (environment.py sets it from started_here()).
PROGRAMS = (
    Program("redis", "redis", "redis-server", "redis-server", layer_server="redis"),
    Program("sentinel", "redis", "redis-server", "redis-server"),
    # Erlang's port mapper, supervised: the broker's node would otherwise start a daemon of its own
    # that outlives the deployment.
    Program("epmd", "all", "epmd", "rabbitmq-server", layer_server="rabbitmq"),
    Program("rabbitmq", "all", RABBITMQ_SERVER, "rabbitmq-server", layer_server="rabbitmq"),
    Program("postgres", "database"),
    Program("daphne", "interface", clients=("layer",)),
    Program("workers-realtime", "worker", pool="realtime", clients=("layer", "database")),
    Program("workers-background", "worker", pool="background", clients=("layer", "database")),
    Program("workers-default", "worker", pool="default", clients=("layer", "database")),
    Program("delay", "worker", pool="default", clients=("layer", "database")),
    # supervisord's event listener that sends a dead worker's message back (ops/inflight.py): one
    # per host that runs the pool of the chat's frames, since each host's supervisord sees only its
    # own processes.
    Program("reclaim", "worker", pool="realtime", clients=("layer",)),
    Program("gunicorn", "web", clients=("layer", "database")),
    Program("nginx", "balancer", "nginx", "nginx-light"),
)


def started_here():
    """The programs this host starts. One machine (CHAT_ROLE=all) runs every program of the
    deployment, but a layer server's only when it is the deployment's own (CHAT_LAYER_SERVER); a host
    of a cluster runs its role's: its pools only (CHAT_POOLS), a Sentinel beside its Redis when the
    layer finds its masters through them. No gunicorn in the asgi shape (CHAT_TOPOLOGY). The one
    place that decides what runs where."""
    return [program for program in PROGRAMS if _runs_here(program, settings.CHAT_ROLE)]


def _runs_here(program, role):
    if role == "all":
        if program.layer_server or program.role in ("redis", "database"):
            return program.layer_server is not None and settings.CHAT_LAYER_SERVER == program.layer_server
    elif program.role != role:
        return False
    if program.pool is not None and program.pool not in settings.CHAT_POOLS:
        return False
    if program.name == "sentinel" and not sentinel_layout():
        return False
    if program.name == "reclaim" and "redelivery" in layer_extensions():
        # The layer gives a dead worker's message to another worker by itself (RabbitMQ: unacked).
        return False
    return not (program.name == "gunicorn" and settings.CHAT_TOPOLOGY == "asgi")


def layer_extensions():
    """What the deployment's layer can do beyond ASGI v1 (its `extensions`)."""
    return channel_layers[DEFAULT_CHANNEL_LAYER].channel_layer.extensions


def sentinel_layout():
    """Whether the layer finds its masters through Sentinels (CHAT_REDIS_SENTINELS): Redis hosts
    run one beside their server, and their masters are configured for failover."""
    return "sentinels" in settings.CHANNEL_LAYERS["default"]["CONFIG"]


def named(name):
    return next(program for program in PROGRAMS if program.name == name)


def clients(started):
    """What the programs about to start connect to: {"layer", "database"} or less."""
    return {client for program in started for client in program.clients}


def start_variable(program):
    """The environment variable supervisord.conf reads as the program's autostart."""
    return "CHAT_START_%s" % program.name.upper().replace("-", "_")

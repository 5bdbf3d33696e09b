"""Every check that can fail before a process of the deployment starts, each with its one-line fix."""
import shutil
import socket

from channels import DEFAULT_CHANNEL_LAYER, channel_layers
from django.conf import settings

from my_project.layers.base import LayerUnavailable

from . import capacity, programs, supervisor
from .exceptions import DeploymentError

SOCKET_PATH_LIMIT = 100  # sun_path is 108 bytes; leave room for daphne's ".lock"


def check(env, started):
    """Raise DeploymentError for the first problem found; `started`: the programs to start, `env`
    the environment they will get."""
    paths = settings.CHAT_PATHS
    if supervisor.alive(paths.supervisor_socket):
        raise DeploymentError(
            "a deployment of %s is running already: stop it first (`make stop`)" % paths.var)
    if len(paths.daphne_socket(0) + ".lock") > SOCKET_PATH_LIMIT:
        raise DeploymentError(
            "%s is too long a path for unix sockets: set CHAT_VAR_DIR to a shorter one" % paths.var)
    names = {program.name for program in started}
    if "daphne" in names:
        sockets(capacity.current())
    for program in started:
        if program.binary:
            binary(program.binary, env["PATH"], program.package)
    if "nginx" in names:
        free(settings.CHAT_PORT, "port %d is in use: stop what listens there or pick another "
             "(PORT=%d make run)" % (settings.CHAT_PORT, settings.CHAT_PORT + 1))
    if "redis" in names:
        address, port = settings.CHAT_NETWORK.redis_address
        free(port, "port %d, where this deployment runs its redis-server, is in use: "
             "stop what listens there, or give CHAT_REDIS_URL" % port, address)
    if "rabbitmq" in names:
        ports = paths.rabbitmq_ports
        for what, port in ports._asdict().items():
            free(port, "port %d, where this deployment runs its RabbitMQ (%s; %d-%d, from its var dir), is in "
                 "use: stop what listens there, or give CHAT_AMQP_URL" % (port, what, ports[0], ports[-1]))
    clients = programs.clients(started)
    # A server of the deployment's own is not up yet; a host of a cluster needs the others' up.
    if "layer" in clients and not (settings.CHAT_LAYER_SERVER and settings.CHAT_LAYER_SERVER in names):
        try:
            channel_layers[DEFAULT_CHANNEL_LAYER].channel_layer.check()
        except LayerUnavailable as exc:
            raise DeploymentError(str(exc))
    if "database" in clients:
        check_database()


def sockets(planned):
    """DeploymentError when the deployment `planned` (an ops.capacity.Capacity) cannot hold
    CHAT_MAX_SOCKETS: too few daphnes for the descriptor limit, or reply lists a broadcast to a room
    that size would overflow."""
    # The upstream flavor (benchmarks' comparison) keeps the libraries' own capacities on purpose.
    response = None if settings.CHAT_LAYER_FLAVOR == "upstream" else \
        channel_layers[DEFAULT_CHANNEL_LAYER].channel_layer.get_capacity("daphne.response.check!")
    found = capacity.problem(planned, response)
    if found:
        raise DeploymentError(found)


def binary(name, path, package):
    """The full path of a program on `path`; DeploymentError naming the package if there is none."""
    found = shutil.which(name, path=path)
    if not found:
        raise DeploymentError(
            "%s is not installed: run `apt-get install %s` as root (or `make run` as root, "
            "which installs it)" % (name, package))
    return found


def free(port, problem, address="127.0.0.1"):
    """DeploymentError(problem) when a port cannot be bound."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is fine
        try:
            sock.bind((address, port))
        except OSError:
            raise DeploymentError(problem)


def check_database():
    from django.db import DatabaseError, connection
    from django.db.migrations.executor import MigrationExecutor
    try:
        connection.ensure_connection()
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as exc:
        raise DeploymentError("cannot use the database (%s): check CHAT_DATABASE_URL" %
                              str(exc).strip().splitlines()[0])
    finally:
        connection.close()
    if pending:
        raise DeploymentError("the database has unapplied migrations: run `manage.py migrate`")

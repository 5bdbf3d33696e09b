"""Where one deployment keeps its files and sockets, and its machine-wide names: all derived from its
var dir."""
import collections
import hashlib
import os

# The deployment's own RabbitMQ's loopback ports (Paths.rabbitmq_ports).
RabbitmqPorts = collections.namedtuple("RabbitmqPorts", "amqp management epmd dist")
RabbitmqPorts.__doc__ = """AMQP (the layer's URL), the management HTTP API (the layer's depths for `make
status`), Erlang's port mapper (ERL_EPMD_PORT) and the node's distribution port (RABBITMQ_DIST_PORT)."""


class Paths(object):
    """The files, directories and sockets of the deployment whose runtime state lives in `var_dir`.

    The one home of these names: settings, the deployment's start-up (which hands them to
    supervisord and nginx), the commands that talk to a running deployment and the test harness all
    ask this class. Free of Django, so an interface server on another Python can use it too.
    """

    def __init__(self, var_dir):
        self.var = os.path.abspath(var_dir)
        self.run = os.path.join(self.var, "run")  # sockets and pid files: emptied at every start
        self.log = os.path.join(self.var, "log")
        self.static = os.path.join(self.var, "static")
        self.releases = os.path.join(self.var, "releases")
        self.database = os.path.join(self.var, "db.sqlite3")  # the default database
        # Channel sessions as files for a layer that keeps no values (RabbitMQ; IPC before its
        # sessions moved to tmpfs, see channel_sessions_in_memory).
        self.channel_sessions = os.path.join(self.var, "channel-sessions")
        self.supervisor_socket = os.path.join(self.run, "supervisor.sock")
        self.inflight = os.path.join(self.run, "inflight")  # each worker's in-flight record (ops/inflight.py)
        self.gunicorn_socket = os.path.join(self.run, "gunicorn.sock")
        self.redis_conf = os.path.join(self.run, "redis.conf")
        self.redis_data = os.path.join(self.var, "redis")
        self.sentinel_conf = os.path.join(self.run, "sentinel.conf")  # Sentinel rewrites it as it learns
        self.rabbitmq_conf = os.path.join(self.run, "rabbitmq.conf")
        self.rabbitmq_plugins = os.path.join(self.run, "enabled_plugins")  # RABBITMQ_ENABLED_PLUGINS_FILE
        # The broker's HOME (its Erlang cookie), database and logs: emptied at every start.
        self.rabbitmq_data = os.path.join(self.var, "rabbitmq")
        self.postgres_data = os.path.join(self.var, "postgres")  # a database host's cluster
        self.nginx_conf_dir = os.path.join(self.var, "nginx-conf")  # rendered from the checkout's nginx/
        self.nginx_conf = os.path.join(self.nginx_conf_dir, "nginx.conf")
        self.nginx_prefix = os.path.join(self.var, "nginx")  # nginx's temporary files

    def daphne_socket(self, index):
        """The Unix socket daphne number `index` listens on (nginx's upstream server)."""
        return os.path.join(self.run, "daphne-%02d.sock" % index)

    @property
    def ipc_prefix(self):
        """The IPC layer's names in the machine-wide shared memory: one set per deployment."""
        return "chat-" + self._digest()[:10]

    @property
    def channel_sessions_in_memory(self):
        """Channel sessions as files with the IPC layer: in tmpfs, named like and removed with its
        shared memory (layers/ipc.py SHM_DIR). On the var dir's disk file system each write's rename
        waited on the journal, ~0.8 ms, and the realtime workers spent half their time there."""
        return os.path.join("/dev/shm", self.ipc_prefix + "-sessions")

    @property
    def redis_port(self):
        """The loopback port of the deployment's own redis-server (20000-29999: below the kernel's
        ephemeral ports, so no outgoing connection holds it). Derived rather than picked free at
        start, so every later command (`make status`, a rollout, the tests) knows it without asking
        the running deployment; `manage.py serve` says so if another program holds it."""
        return 20000 + int(self._digest()[:8], 16) % 10000

    @property
    def rabbitmq_ports(self):
        """The loopback ports of the deployment's own RabbitMQ: a block of four consecutive ports in
        10000-19999 (below the kernel's ephemeral ports, and apart from redis_port's range, so the
        two never meet), from another part of the digest; derived for the same reasons."""
        base = 10000 + 4 * (int(self._digest()[8:16], 16) % 2500)
        return RabbitmqPorts(*range(base, base + 4))

    @property
    def rabbitmq_node(self):
        """The Erlang node name of the deployment's own RabbitMQ (RABBITMQ_NODENAME), one per
        deployment: Erlang's tools find a node by its name, and its database is named after it."""
        return "chat-%s@localhost" % self._digest()[:10]

    def _digest(self):
        return hashlib.sha1(self.var.encode()).hexdigest()

    def __repr__(self):
        return "Paths(%r)" % self.var

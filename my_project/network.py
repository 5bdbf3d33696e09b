"""Where a deployment's servers listen and how they find each other: Unix sockets on one machine, TCP
on the hosts' addresses when its roles run on separate hosts."""

# What a host runs (CHAT_ROLE; ops/programs.py maps each to its programs): "all" is one machine.
ROLES = ("all", "balancer", "interface", "worker", "web", "redis", "database")
# The worker pools a worker host may run (CHAT_POOLS); channels' delay server goes with "default".
POOLS = ("realtime", "background", "default")


class Network(object):
    """The listening addresses of one host's servers, and the upstreams of the others.

    The one home of the ports a cluster's hosts use: every host runs the same configuration, so a
    balancer knows where the daphnes of every interface host listen from their addresses alone. Free
    of Django, like Paths: the interface server asks it for its endpoint.
    """

    DAPHNE_PORT = 8100      # daphne number n of an interface host listens on DAPHNE_PORT + n
    GUNICORN_PORT = 8200
    REDIS_PORT = 6379
    SENTINEL_PORT = 26379
    POSTGRES_PORT = 5432
    SUPERVISOR_PORT = 9001  # a worker host's supervisord, for the rollout tool (XML-RPC, password)
    # twisted's default backlog of 50 refuses the 51st simultaneous connect (nginx answers 502).
    BACKLOG = 1024

    def __init__(self, paths, address="", interface_hosts=(), web_hosts=(), worker_hosts=()):
        self.paths = paths
        self.address = address  # this host's address in the cluster; "" on one machine
        self.interface_hosts = list(interface_hosts)
        self.web_hosts = list(web_hosts)
        self.worker_hosts = list(worker_hosts)

    def daphne_endpoint(self, index):
        """The twisted endpoint daphne number `index` listens on."""
        if self.address:
            return "tcp:port=%d:interface=%s:backlog=%d" % (self.DAPHNE_PORT + index, self.address, self.BACKLOG)
        return "unix:%s:lockfile=1:backlog=%d" % (self.paths.daphne_socket(index), self.BACKLOG)

    def daphne_upstreams(self, procs):
        """nginx's servers for every daphne: each interface host's `procs`, or this machine's sockets."""
        if self.interface_hosts:
            return ["%s:%d" % (host, self.DAPHNE_PORT + n) for host in self.interface_hosts for n in range(procs)]
        return ["unix:%s" % self.paths.daphne_socket(n) for n in range(procs)]

    def gunicorn_bind(self):
        """gunicorn's --bind."""
        if self.address:
            return "%s:%d" % (self.address, self.GUNICORN_PORT)
        return "unix:%s" % self.paths.gunicorn_socket

    def gunicorn_upstreams(self):
        if self.web_hosts:
            return ["%s:%d" % (host, self.GUNICORN_PORT) for host in self.web_hosts]
        return ["unix:%s" % self.paths.gunicorn_socket]

    def supervisor_urls(self, user, password):
        """{worker host: its supervisord's XML-RPC URL}, for a rollout across them."""
        return {host: "http://%s:%s@%s:%d/RPC2" % (user, password, host, self.SUPERVISOR_PORT)
                for host in self.worker_hosts}

    @property
    def identity(self):
        """How this host names itself in the workers' health rows: its cluster address, else its
        host name (one machine)."""
        import socket
        return self.address or socket.gethostname()

    @property
    def redis_address(self):
        """(address, port) of the deployment's own redis-server: a Redis host's cluster address, or
        loopback on the port derived from the var dir."""
        if self.address:
            return self.address, self.REDIS_PORT
        return "127.0.0.1", self.paths.redis_port

    def __repr__(self):
        return "Network(%r, address=%r)" % (self.paths, self.address)

"""The cluster `make cluster` builds: its hosts, their roles and addresses, and each one's settings."""
import collections
import json
import os
import secrets

from my_project.network import Network
from my_project.paths import Paths

from .netns import SUBNET

Host = collections.namedtuple("Host", "name role index")
Host.__doc__ = "One host of the cluster: its role (CHAT_ROLE) and address number on the LAN."

# In start order: each stage's hosts start together once the stages before are up.
STAGES = (
    (Host("database", "database", 51), Host("redis-1", "redis", 41), Host("redis-2", "redis", 42),
     Host("redis-3", "redis", 43)),
    (Host("interface-1", "interface", 11), Host("interface-2", "interface", 12),
     Host("worker-1", "worker", 21), Host("worker-2", "worker", 22), Host("web", "web", 31)),
    (Host("balancer", "balancer", 2),),
)
HOSTS = tuple(host for stage in STAGES for host in stage)
LAYOUTS = ("sharded", "sentinel")
SERVICE = "chat"  # the Sentinel layout's service name
STATE_FILE = "cluster.json"  # in the cluster's root while it runs: layout, port, hosts, portal


def address(host):
    return SUBNET % host.index


def of_role(role):
    return [host for host in HOSTS if host.role == role]


class Plan(object):
    """One cluster's layout, secrets and directories (all under `root`), and every host's settings:
    the same configuration everywhere, plus the host's role, address and var dir."""

    def __init__(self, root, layout, port):
        self.root = os.path.abspath(root)
        self.layout = layout
        self.port = port
        self.secrets = self._secrets()

    SECRETS = ("secret_key", "redis", "database", "supervisor")

    def _secrets(self):
        """Generated at the first start, kept (0600) so later commands (status, tests) can talk to it."""
        path = os.path.join(self.root, "secrets.json")
        saved = {}
        if os.path.exists(path):
            with open(path) as existing:
                saved = json.load(existing)
        if set(self.SECRETS) - set(saved):
            saved.update({name: secrets.token_urlsafe(24) for name in self.SECRETS if name not in saved})
            os.makedirs(self.root, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(saved, out)
        return saved

    def var_dir(self, host):
        return os.path.join(self.root, host.name)

    def paths(self, host):
        """The host's files and sockets (its supervisord's, its run dir), as its deployment has them."""
        return Paths(self.var_dir(host))

    def shared(self):
        """The settings every host gets."""
        redis_password, redis_hosts = self.secrets["redis"], [address(h) for h in of_role("redis")]
        env = {
            "CHAT_SECRET_KEY": self.secrets["secret_key"],
            "CHAT_PORT": str(self.port),
            "CHAT_LAYER": "redis",
            "CHAT_REDIS_PASSWORD": redis_password,
            "CHAT_DATABASE_URL": "postgres://chat:%s@%s:%d/chat" % (
                self.secrets["database"], address(of_role("database")[0]), Network.POSTGRES_PORT),
            "CHAT_INTERFACE_HOSTS": ",".join(address(h) for h in of_role("interface")),
            "CHAT_WEB_HOSTS": ",".join(address(h) for h in of_role("web")),
            "CHAT_WORKER_HOSTS": ",".join(address(h) for h in of_role("worker")),
            "CHAT_SUPERVISOR_PASSWORD": self.secrets["supervisor"],
            # One releases directory for the worker hosts (a network filesystem on real machines).
            "CHAT_RELEASES_DIR": os.path.join(self.root, "releases"),
        }
        if self.layout == "sentinel":
            env.update({"CHAT_REDIS_SENTINELS": ",".join("%s:%d" % (h, Network.SENTINEL_PORT) for h in redis_hosts),
                        "CHAT_REDIS_SERVICE": SERVICE, "CHAT_REDIS_URL": ""})
        else:
            env.update({"CHAT_REDIS_URL": ",".join("redis://:%s@%s:%d/0" % (redis_password, h, Network.REDIS_PORT)
                                                   for h in redis_hosts), "CHAT_REDIS_SENTINELS": ""})
        return env

    def environment(self, host, base):
        """The environment of `manage.py serve` on `host`: the caller's, the cluster's, the host's."""
        env = {k: v for k, v in base.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        env.update(self.shared())
        env.update({"CHAT_ROLE": host.role, "CHAT_HOST_ADDRESS": address(host), "CHAT_VAR_DIR": self.var_dir(host)})
        if self.layout == "sentinel" and host.role == "redis" and host != of_role("redis")[0]:
            env["CHAT_REDIS_REPLICA_OF"] = "%s:%d" % (address(of_role("redis")[0]), Network.REDIS_PORT)
        else:
            env["CHAT_REDIS_REPLICA_OF"] = ""
        return env

    def state_file(self):
        return os.path.join(self.root, STATE_FILE)

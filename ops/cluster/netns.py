"""Network namespaces for a cluster's hosts: one LAN (a bridge in a namespace of its own), a veth
pair per host, no route to anything else."""
import hashlib
import logging
import os
import shutil
import subprocess

from ..exceptions import DeploymentError

logger = logging.getLogger(__name__)

NETNS_DIR = "/var/run/netns"  # where `ip netns add` names them
SUBNET = "10.77.0.%d"
PREFIX_LENGTH = 24
BRIDGE = "lan0"


def check():
    """DeploymentError with the fix when this machine cannot make namespaces."""
    if os.geteuid() != 0:
        raise DeploymentError("`make cluster` makes network namespaces (ip netns): run it as root")
    if not shutil.which("ip"):
        raise DeploymentError("`ip` is not installed: run `apt-get install iproute2` as root")


def ip(*args, check_result=True):
    result = subprocess.run(["ip"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    if check_result and result.returncode:
        raise DeploymentError("ip %s failed: %s" % (" ".join(args), result.stdout.strip()))
    return result.stdout


class Namespaces(object):
    """The namespaces of one cluster, named after its var dir (two clusters on one machine, e.g.
    two test runs, do not meet): "<prefix>lan" holds the bridge, "<prefix><host>" each host."""

    def __init__(self, var_dir):
        self.prefix = "c%s-" % hashlib.sha1(os.path.abspath(var_dir).encode()).hexdigest()[:6]

    def name(self, host):
        return self.prefix + host

    @property
    def lan(self):
        return self.prefix + "lan"

    def exec_prefix(self, host):
        """The command prefix that runs a program inside a host's namespace."""
        return ["ip", "netns", "exec", self.name(host)]

    def existing(self):
        try:
            return sorted(name for name in os.listdir(NETNS_DIR) if name.startswith(self.prefix))
        except FileNotFoundError:
            return []

    def create(self, hosts):
        """A namespace per host {name: address index}, cabled to the LAN's bridge; loopback up; no
        default route, so nothing leaves the cluster."""
        self.remove()  # a cluster killed before it could clean up
        ip("netns", "add", self.lan)
        ip("-n", self.lan, "link", "add", BRIDGE, "type", "bridge")
        ip("-n", self.lan, "link", "set", BRIDGE, "up")
        for number, (host, index) in enumerate(sorted(hosts.items())):
            namespace, cable = self.name(host), "h%d" % number
            ip("netns", "add", namespace)
            ip("-n", self.lan, "link", "add", cable, "type", "veth", "peer", "name", "eth0", "netns", namespace)
            ip("-n", self.lan, "link", "set", cable, "master", BRIDGE, "up")
            ip("-n", namespace, "addr", "add", "%s/%d" % (SUBNET % index, PREFIX_LENGTH), "dev", "eth0")
            ip("-n", namespace, "link", "set", "eth0", "up")
            ip("-n", namespace, "link", "set", "lo", "up")

    def cut(self, host):
        """Take a host off the network (its link down: packets vanish, nobody is told)."""
        ip("-n", self.name(host), "link", "set", "eth0", "down")

    def mend(self, host):
        ip("-n", self.name(host), "link", "set", "eth0", "up")

    def remove(self):
        for name in reversed(self.existing()):  # hosts first, the LAN (and its cables) last
            ip("netns", "del", name, check_result=False)

"""A cluster's life on this machine: namespaces made, each host's `manage.py serve` started in its own
(stage by stage), the portal opened; and everything removed again, whatever happened."""
import json
import logging
import os
import signal
import subprocess
import sys
import time

from django.conf import settings

from my_project.paths import Paths

from .. import supervisor
from ..deployment import die_with_parent, processes_of
from ..exceptions import DeploymentError
from ..preflight import free
from . import plan as plans
from .netns import Namespaces, check

logger = logging.getLogger(__name__)

HOST_TIMEOUT = 120  # seconds a stage may take to come up


class Cluster(object):
    """The hosts of a Plan, each `manage.py serve` with its role in its own namespace."""

    def __init__(self, plan):
        self.plan = plan
        self.namespaces = Namespaces(plan.root)
        self.processes = {}  # host name -> its serve process
        self.portal = None
        self.owned = False

    def start(self, stopping=()):
        check()
        if os.path.exists(self.plan.state_file()) and any(
                supervisor.alive(self.plan.paths(host).supervisor_socket)
                for host in plans.HOSTS):
            raise DeploymentError("a cluster of %s is running already: stop it first (Ctrl-C where it runs)"
                                  % self.plan.root)
        free(self.plan.port, "port %d is in use: pick another (PORT=%d make cluster)" % (
            self.plan.port, self.plan.port + 1))
        self.owned = True  # from here on, stop() cleans up whatever start() got to
        self.namespaces.create({host.name: host.index for host in plans.HOSTS})
        base = dict(os.environ)
        for number, stage in enumerate(plans.STAGES):
            for host in stage:
                if host.role == "balancer":
                    self.manage(host, base, "collectstatic", "-v0", "--noinput")
                self.processes[host.name] = self.serve(host, base)
            self.wait(stage, stopping)
            if number == 0:  # the database is up: the schema, once, from a worker host
                self.manage(plans.of_role("worker")[0], base, "migrate", "-v0", "--noinput")
        self.portal = subprocess.Popen(
            [sys.executable, "-m", "ops.cluster.portal", str(self.plan.port),
             self.namespaces.name(plans.of_role("balancer")[0].name)],
            cwd=settings.BASE_DIR, stdout=subprocess.PIPE, preexec_fn=die_with_parent)
        if not self.portal.stdout.readline():
            raise DeploymentError("the portal to the balancer did not start")
        self.save_state()

    def save_state(self):
        with open(self.plan.state_file(), "w") as out:
            json.dump({"layout": self.plan.layout, "port": self.plan.port, "prefix": self.namespaces.prefix,
                       "portal_pid": self.portal.pid, "hosts": [host._asdict() for host in plans.HOSTS]}, out)

    def output(self, host):
        return os.path.join(self.plan.root, "%s.out" % host.name)

    def serve(self, host, base):
        os.makedirs(self.plan.var_dir(host), exist_ok=True)
        with open(self.output(host), "w") as out:
            return subprocess.Popen(
                self.namespaces.exec_prefix(host.name) + [sys.executable, "manage.py", "serve"],
                cwd=settings.BASE_DIR, env=self.plan.environment(host, base), stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent)

    def manage(self, host, base, *args):
        result = subprocess.run(
            self.namespaces.exec_prefix(host.name) + [sys.executable, "manage.py"] + list(args),
            cwd=settings.BASE_DIR, env=self.plan.environment(host, base), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, universal_newlines=True)
        if result.returncode:
            lines = result.stdout.strip().splitlines()
            raise DeploymentError("manage.py %s on %s failed: %s" % (args[0], host.name, lines[-1] if lines else "?"))

    def wait(self, stage, stopping):
        deadline = time.time() + HOST_TIMEOUT
        waiting = list(stage)
        while waiting:
            if stopping:
                raise DeploymentError("interrupted during start-up")
            for host in list(waiting):
                with open(self.output(host), errors="replace") as out:
                    text = out.read()
                if "Host up" in text:
                    waiting.remove(host)
                elif self.processes[host.name].poll() is not None:
                    lines = [line for line in text.splitlines() if line.strip()]
                    raise DeploymentError("host %s did not start: %s" % (host.name, lines[-1] if lines else "?"))
            if time.time() > deadline:
                raise DeploymentError("hosts %s did not come up within %d s: see %s" % (
                    ", ".join(h.name for h in waiting), HOST_TIMEOUT, self.plan.root))
            time.sleep(0.2)

    def failed(self):
        """The first host whose serve exited, or the portal if it did (a cluster is up while none has)."""
        if self.portal is not None and self.portal.poll() is not None:
            return "portal"
        return next((name for name, process in self.processes.items() if process.poll() is not None), None)

    def stop(self):
        """Stop every host (the balancer first, the servers last), sweep, remove the namespaces."""
        if not self.owned:
            return
        if self.portal and self.portal.poll() is None:
            self.portal.terminate()
            self.portal.wait()
        for stage in reversed(plans.STAGES):
            for host in stage:
                process = self.processes.get(host.name)
                if process and process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for host in stage:
                process = self.processes.get(host.name)
                if process:
                    try:
                        process.wait(100)
                    except subprocess.TimeoutExpired:
                        os.killpg(process.pid, signal.SIGKILL)
                        process.wait()
        for host in plans.HOSTS:
            for pid in processes_of(self.plan.paths(host).run):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        self.namespaces.remove()
        try:
            os.unlink(self.plan.state_file())
        except FileNotFoundError:
            pass


def root():
    """Where the cluster of this var dir keeps its hosts' var dirs, secrets and state."""
    return os.path.join(settings.CHAT_PATHS.var, "cluster")


def describe(cluster_root):
    """Lines: the layout, URL, and a table of hosts, roles, addresses and their programs' states;
    None when no cluster runs from `cluster_root`."""
    found = table(cluster_root)
    if found is None:
        return None
    state, rows = found
    lines = ["Cluster (%s layout) on http://127.0.0.1:%d" % (state["layout"], state["port"]),
             "  %-12s %-10s %-11s %s" % ("host", "role", "address", "programs")]
    return lines + ["  %-12s %-10s %-11s %s" % row for row in rows]


def table(root):
    """Rows (host, role, address, programs and their states) of the cluster running in `root`, or None."""
    try:
        with open(os.path.join(root, plans.STATE_FILE)) as saved:
            state = json.load(saved)
    except FileNotFoundError:
        return None
    rows = []
    for fields in state["hosts"]:
        host = plans.Host(**fields)
        socket_path = Paths(os.path.join(root, host.name)).supervisor_socket
        try:
            infos = supervisor.processes(supervisor.connect(socket_path))
            programs = ", ".join("%s %s" % (info["name"], info["statename"]) for info in infos
                                 if info["statename"] != "STOPPED")
        except Exception:  # that host's supervisord is gone
            programs = "(not running)"
        rows.append((host.name, host.role, plans.address(host), programs))
    return state, rows

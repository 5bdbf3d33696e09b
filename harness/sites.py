"""Whole deployments for the tests and the benchmarks, on free ports: as `make run` starts them
(manage.py serve), or from the Procfile as `make paas` does."""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request

from my_project.env import PLATFORM_NAMES, PREFIX
from my_project.layers.ipc import remove_segments
from my_project.paths import Paths
from ops import supervisor
from ops.deployment import processes_of
from ops.environment import MARK

from .servers import REPO, free_port, port_open, wait_for

PYTHON = sys.executable  # the project's virtualenv, which runs the tests


class Site(object):
    """One whole deployment started with `manage.py serve`, as `make run` starts it."""

    def __init__(self, **env):
        self.var_dir = tempfile.mkdtemp(prefix="chat-e2e-")
        self.paths = Paths(self.var_dir)
        self.port = free_port()
        self.env = dict(os.environ)
        # Nothing of the caller's settings: CHAT_* nor the platform names the settings read too.
        for key in [k for k in self.env if k.startswith(PREFIX) or k in PLATFORM_NAMES]:
            del self.env[key]
        self.env.update({
            "CHAT_SECRET_KEY": "e2e-secret-key",
            "CHAT_VAR_DIR": self.var_dir,
            "CHAT_PORT": str(self.port),
            "CHAT_GUNICORN_WORKERS": "1",
            "CHAT_POLL_HOLD": "3",  # the tests wait for held polls to expire
        })
        self.env.update(env)
        self.process = None
        self.output = os.path.join(self.var_dir, "serve.out")

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def topology(self):
        return self.env.get("CHAT_TOPOLOGY", "split")

    @property
    def own_redis(self):
        """Whether supervisord runs this deployment's Redis (LAYER=redis without a URL)."""
        return self.env.get("CHAT_LAYER") == "redis" and not self.env.get("CHAT_REDIS_URL")

    @property
    def own_broker(self):
        """Whether supervisord runs this deployment's RabbitMQ (LAYER=rabbitmq without a URL)."""
        return self.env.get("CHAT_LAYER") == "rabbitmq" and not self.env.get("CHAT_AMQP_URL")

    def page_pool(self, path):
        """The pool expected to render a page at `path` in this shape: gunicorn's ("web") or the
        realtime workers' through daphne."""
        wsgi_paths = self.env.get("CHAT_WSGI_PATHS", "/accounts/").split(",")
        if self.topology == "split" or (self.topology == "inverse" and path.startswith(tuple(wsgi_paths))):
            return "web"
        return "realtime"

    def manage(self, *args, **kwargs):
        """Run a management command in this deployment's environment; returns CompletedProcess."""
        return subprocess.run([PYTHON, "manage.py"] + list(args), cwd=REPO, env=self.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=kwargs.get("timeout", 120))

    def shell(self, code):
        result = self.manage("shell", "-c", code)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def start(self, timeout=120):
        for args in (("migrate", "-v0", "--noinput"), ("collectstatic", "-v0", "--noinput")):
            result = self.manage(*args)
            assert result.returncode == 0, result.stderr
        return self.launch([PYTHON, "manage.py", "serve"], lambda: "Chat is up" in self.read_output(),
                           timeout, "the deployment to come up")

    def launch(self, argv, ready, timeout, what):
        """Run `argv` (its output into self.output) until ready() or it exits; closed on failure."""
        with open(self.output, "w") as out:
            self.process = subprocess.Popen(argv, cwd=REPO, env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(lambda: ready() or self.process.poll() is not None, timeout, what)
            assert self.process.poll() is None, self.read_output()
        except BaseException:
            self.close()
            raise
        return self

    def read_output(self):
        with open(self.output) as out:
            return out.read()

    def redis_url(self):
        """The URL of the deployment's (first) Redis server, as its settings give it."""
        return self.shell("from django.conf import settings; "
                          "print(settings.CHANNEL_LAYERS['default']['CONFIG']['hosts'][0])")

    def supervisor(self):
        return supervisor.connect(self.paths.supervisor_socket).supervisor

    def processes(self, group=None):
        infos = self.supervisor().getAllProcessInfo()
        return [i for i in infos if group is None or i["group"] == group]

    def wait_running(self, name, timeout=30):
        """Until process group:name is RUNNING; returns its info."""
        found = {}

        def running():
            info = self.supervisor().getProcessInfo(name)
            found.update(info)
            return info["statename"] == "RUNNING"
        wait_for(running, timeout, "%s to run" % name)
        return found

    def healthy(self):
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def leftovers(self):
        """Processes still alive that this deployment started."""
        return processes_of(self.paths.run)

    def log_tails(self, lines=15):
        """The last lines of every log of this deployment, for the report of a failed run."""
        out = []
        for path in sorted(glob.glob(os.path.join(self.paths.log, "*.log"))):
            with open(path, errors="replace") as log:
                tail = log.read().splitlines()[-lines:]
            out.append("==> %s <==\n%s" % (os.path.basename(path), "\n".join(tail)))
        return "\n".join(out)

    def terminate(self, timeout=100):
        """SIGTERM to the command that runs the deployment, SIGKILL to its group if it lingers."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def close(self):
        """Stop everything, even after a failed test: SIGTERM to serve, then SIGKILL stragglers."""
        self.terminate()
        for pid in self.leftovers():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        # A management command run against the stopped deployment (a test's shell) makes its IPC
        # layer's segments again.
        remove_segments(self.paths.ipc_prefix)
        shutil.rmtree(self.var_dir, ignore_errors=True)


class PaasSite(Site):
    """The site as a platform runs it, from the Procfile under honcho (bin/paas, as `make paas`):
    daphne alone on PORT, the redis layer, static files from the app."""

    def __init__(self, **env):
        super(PaasSite, self).__init__(**env)
        self.env.update({
            "PORT": str(self.port),
            "REDIS_PORT": str(free_port()),
            "PATH": os.pathsep.join([os.path.dirname(PYTHON), self.env.get("PATH", "")]),  # honcho, python
            MARK: self.paths.run,  # the processes carry it: leftovers() finds them
        })

    def start(self, timeout=120):
        return self.launch([os.path.join(REPO, "bin", "paas")], self.healthy, timeout, "the Procfile's site")

    def log_tails(self, lines=40):
        return "\n".join(self.read_output().splitlines()[-lines:])


class ClusterSite(Site):
    """The deployment over ten hosts, each a network namespace, as `make cluster` starts it (root)."""

    def __init__(self, layout="sharded", **env):
        super(ClusterSite, self).__init__(**env)
        self.cluster_layout = layout
        self.root = os.path.join(self.var_dir, "cluster")

    def start(self, timeout=240):
        return self.launch([PYTHON, "manage.py", "cluster", "--layout", self.cluster_layout],
                           lambda: "Cluster is up" in self.read_output(), timeout, "the cluster to come up")

    def plan(self):
        from ops.cluster.plan import Plan
        return Plan(self.root, self.cluster_layout, self.port)

    def host(self, name):
        from ops.cluster import plan
        return next(host for host in plan.HOSTS if host.name == name)

    def namespaces(self):
        from ops.cluster.netns import Namespaces
        return Namespaces(self.root)

    def manage(self, *args, **kwargs):
        """A management command on a host (worker-1 by default: it reaches the layer and the database)."""
        host = self.host(kwargs.get("host", "worker-1"))
        return subprocess.run(
            self.namespaces().exec_prefix(host.name) + [PYTHON, "manage.py"] + list(args), cwd=REPO,
            env=self.plan().environment(host, self.env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            universal_newlines=True, timeout=kwargs.get("timeout", 120))

    def host_paths(self, name):
        return self.plan().paths(self.host(name))

    def host_supervisor(self, name):
        return supervisor.connect(self.host_paths(name).supervisor_socket).supervisor

    def supervisor(self):
        return self.host_supervisor("worker-1")

    def processes(self, group=None):
        """Every host's processes, each group named "<role>:<group>" (e.g. worker:realtime), and the
        portal (this machine's way in)."""
        from ops.cluster import plan
        found = []
        for host in plan.HOSTS:
            for info in self.host_supervisor(host.name).getAllProcessInfo():
                info["group"] = "%s:%s" % (host.role, info["group"])
                if group is None or info["group"] == group:
                    found.append(info)
        if group in (None, "portal"):
            with open(self.plan().state_file()) as state:
                found.append({"group": "portal", "name": "portal", "pid": json.load(state)["portal_pid"]})
        return found

    def leftovers(self):
        from ops.cluster import plan
        return [pid for host in plan.HOSTS for pid in processes_of(self.host_paths(host.name).run)]

    def log_tails(self, lines=15):
        from ops.cluster import plan
        out = [self.read_output()]
        for host in plan.HOSTS:
            for path in sorted(glob.glob(os.path.join(self.host_paths(host.name).log, "*.log"))):
                with open(path, errors="replace") as log:
                    tail = log.read().splitlines()[-lines:]
                out.append("==> %s/%s <==\n%s" % (host.name, os.path.basename(path), "\n".join(tail)))
        return "\n".join(out)

    def close(self):
        """Stop the cluster command; note what it left behind (its own clean-up should leave
        nothing), then sweep that too."""
        self.terminate(150)
        self.left_behind = {"processes": self.leftovers(), "namespaces": self.namespaces().existing(),
                            "portal listening": port_open(self.port)}
        super(ClusterSite, self).close()
        self.namespaces().remove()

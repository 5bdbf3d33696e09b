"""Real processes for the tests and the benchmarks: Redis, PostgreSQL, and whole deployments, on free
ports."""
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from my_project.env import PLATFORM_NAMES, PREFIX
from my_project.layers.ipc import remove_segments
from my_project.paths import Paths
from ops import supervisor
from ops.deployment import processes_of
from ops.environment import MARK

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable  # the project's virtualenv, which runs the tests


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


def port_open(port):
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class RedisServer(object):
    """A redis-server of the tests' own, on loopback."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="chat-redis-")
        self.process = None

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: port_open(self.port), 10, "redis on %d" % self.port)
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PostgresServer(object):
    """A throwaway PostgreSQL cluster from the OS packages (run as `postgres` when we are root)."""

    def __init__(self):
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not candidates:
            raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql")
        self.bin = candidates[-1]
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="chat-pg-")
        self.data = os.path.join(self.dir, "data")
        self.user = None
        if os.geteuid() == 0:  # initdb refuses to run as root
            self.user = pwd.getpwnam("postgres")
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)

    def _run(self, *args):
        cmd = [os.path.join(self.bin, args[0])] + list(args[1:])
        if self.user:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.dir)

    @property
    def url(self):
        return "postgres://postgres@127.0.0.1:%d/chat" % self.port

    def start(self):
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "log"), "-w", "start",
                  "-o", "-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s "
                        "-c fsync=off -c max_connections=200" % (self.port, self.dir))
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "chat")
        return self

    def close(self):
        try:
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


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
        with open(self.output, "w") as out:
            self.process = subprocess.Popen(
                [PYTHON, "manage.py", "serve"], cwd=REPO, env=self.env,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(lambda: "Chat is up" in self.read_output() or self.process.poll() is not None,
                     timeout, "the deployment to come up")
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

    def close(self):
        """Stop everything, even after a failed test: SIGTERM to serve, then SIGKILL stragglers."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(100)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
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
        with open(self.output, "w") as out:
            self.process = subprocess.Popen(
                [os.path.join(REPO, "bin", "paas")], cwd=REPO, env=self.env,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(lambda: self.healthy() or self.process.poll() is not None, timeout, "the Procfile's site")
            assert self.process.poll() is None, self.read_output()
        except BaseException:
            self.close()
            raise
        return self

    def log_tails(self, lines=40):
        return "\n".join(self.read_output().splitlines()[-lines:])

"""One deployment of the site: its environment, preflight checks, and supervisord's start and stop."""
import ctypes
import logging
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse

from django.conf import settings

from my_project.layers import ipc

from . import releases, supervisor

logger = logging.getLogger(__name__)

MAX_FDS = 65536
SOCKET_PATH_LIMIT = 100  # sun_path is 108 bytes; leave room for ".lock"
_PLACEHOLDER = re.compile(r"\$\{(CHAT_[A-Z_]+)\}")


class DeploymentError(Exception):
    """Something a person must fix before the deployment can run; the message says what."""


def _die_with_parent():
    """In a child before exec: get SIGTERM when the parent dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def processes_of(run_dir):
    """Pids of live processes (this one aside) started for the deployment whose run dir this is:
    they all carry CHAT_RUN_DIR in their environment, whatever became of their supervisord."""
    marker = ("CHAT_RUN_DIR=%s" % run_dir).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as environ:
                if marker in environ.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Deployment(object):
    """The processes of one var dir under one supervisord."""

    def __init__(self, environ=None):
        self.environ = dict(os.environ if environ is None else environ)
        self.base_dir = settings.BASE_DIR
        self.var_dir = settings.VAR_DIR
        self.run_dir = os.path.join(self.var_dir, "run")
        self.log_dir = os.path.join(self.var_dir, "log")
        self.socket = os.path.join(self.run_dir, "supervisor.sock")
        self.bin_dir = os.path.dirname(sys.executable)
        self.process = None

    # ---- environment ---------------------------------------------------------------------------

    def environment(self):
        """The one environment supervisord and every child inherits."""
        env = dict(self.environ)
        path = [self.bin_dir] + env.get("PATH", "").split(os.pathsep)
        path += [d for d in ("/usr/local/sbin", "/usr/sbin", "/sbin") if d not in path]
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        minfds = MAX_FDS if hard == resource.RLIM_INFINITY else min(MAX_FDS, hard)
        env.update({
            "PATH": os.pathsep.join(path),
            "CHAT_VAR_DIR": self.var_dir,
            "CHAT_RUN_DIR": self.run_dir,
            "CHAT_LOG_DIR": self.log_dir,
            "CHAT_PORT": str(settings.PORT),
            "CHAT_MINFDS": str(minfds),
            "CHAT_DAPHNE_PROCS": str(settings.DAPHNE_PROCS),
            "CHAT_WORKERS_REALTIME": str(settings.WORKERS_REALTIME),
            "CHAT_WORKERS_BACKGROUND": str(settings.WORKERS_BACKGROUND),
            "CHAT_WORKERS_DEFAULT": str(settings.WORKERS_DEFAULT),
            "CHAT_GUNICORN_WORKERS": str(settings.GUNICORN_WORKERS),
            "CHAT_HTTP_TIMEOUT": str(settings.HTTP_TIMEOUT),
            "CHAT_POLL_READ_TIMEOUT": str(settings.HTTP_TIMEOUT + 15),
            # Workers as root would make nginx's workers fall back to "nobody", who cannot reach
            # the sockets in the checkout; run them as the user who owns the deployment.
            "CHAT_NGINX_USER": "user root;" if os.geteuid() == 0 else "",
            "CHAT_DAPHNE_SERVERS": "\n".join(
                "        server unix:%s/daphne-%02d.sock max_fails=0;" % (self.run_dir, n)
                for n in range(settings.DAPHNE_PROCS)),
            "CHAT_REDIS_AUTOSTART": "false",
            "CHAT_REDIS_PORT": "0",
        })
        if settings.LAYER == "redis" and not self.environ.get("CHAT_REDIS_URL"):
            port = free_port()
            password = self.environ.get("CHAT_REDIS_PASSWORD", "")
            auth = ":%s@" % urllib.parse.quote(password, safe="") if password else ""
            env.update({
                "CHAT_REDIS_AUTOSTART": "true",
                "CHAT_REDIS_PORT": str(port),
                "CHAT_REDIS_URL": "redis://%s127.0.0.1:%d/0" % (auth, port),
            })
        return env

    def binary(self, name, env, package):
        found = shutil.which(name, path=env["PATH"])
        if not found:
            raise DeploymentError(
                "%s is not installed: run `apt-get install %s` as root (or `make run` as root, "
                "which installs it)" % (name, package))
        return found

    # ---- checks --------------------------------------------------------------------------------

    def preflight(self, env):
        """Every check that can fail before a process starts, each with its one-line fix."""
        if supervisor.alive(self.socket):
            raise DeploymentError(
                "a deployment of %s is running already: stop it first (`make stop`)" % self.var_dir)
        if len(os.path.join(self.run_dir, "daphne-00.sock.lock")) > SOCKET_PATH_LIMIT:
            raise DeploymentError(
                "%s is too long a path for unix sockets: set CHAT_VAR_DIR to a shorter one" % self.var_dir)
        self.binary("nginx", env, "nginx-light")
        if env["CHAT_REDIS_AUTOSTART"] == "true":
            self.binary("redis-server", env, "redis-server")
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as nginx binds: TIME_WAIT is fine
            try:
                sock.bind(("127.0.0.1", settings.PORT))
            except OSError:
                raise DeploymentError(
                    "port %d is in use: stop what listens there or pick another (PORT=%d make run)"
                    % (settings.PORT, settings.PORT + 1))
        if settings.LAYER == "redis" and env["CHAT_REDIS_AUTOSTART"] != "true":
            self.check_redis(settings.REDIS_URLS)
        self.check_database()

    @staticmethod
    def check_redis(urls):
        import redis
        for url in urls:
            try:
                redis.StrictRedis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping()
            except redis.RedisError as exc:
                raise DeploymentError(
                    "cannot reach Redis at %s (%s): start it, fix CHAT_REDIS_URL, or leave it unset "
                    "to run a local redis-server" % (url, exc))

    @staticmethod
    def check_database():
        from django.db import DatabaseError, connection
        from django.db.migrations.executor import MigrationExecutor
        try:
            connection.ensure_connection()
            pending = MigrationExecutor(connection).migration_plan(
                MigrationExecutor(connection).loader.graph.leaf_nodes())
        except DatabaseError as exc:
            raise DeploymentError("cannot use the database (%s): check CHAT_DATABASE_URL" %
                                  str(exc).strip().splitlines()[0])
        finally:
            connection.close()
        if pending:
            raise DeploymentError("the database has unapplied migrations: run `manage.py migrate`")

    # ---- files ---------------------------------------------------------------------------------

    def prepare(self, env):
        for sub in ("run", "log", "redis", "nginx"):
            os.makedirs(os.path.join(self.var_dir, sub), exist_ok=True)
        # Leftovers of a run that was killed: nobody is using them (preflight found no supervisord).
        for name in os.listdir(self.run_dir):
            os.unlink(os.path.join(self.run_dir, name))
        self.clean_layer()
        releases.ensure_current()
        if env["CHAT_REDIS_AUTOSTART"] == "true":
            self.write_private(settings.LOCAL_REDIS_FILE, env["CHAT_REDIS_URL"])
            password = self.environ.get("CHAT_REDIS_PASSWORD", "")
            self.write_private(os.path.join(self.run_dir, "redis.conf"), "\n".join([
                "port %s" % env["CHAT_REDIS_PORT"],
                "bind 127.0.0.1",          # loopback only; another machine reaches it through its own URL
                "protected-mode yes",
                'save ""',                 # a channel layer: nothing worth keeping across restarts
                "appendonly no",
                "dir %s" % os.path.join(self.var_dir, "redis"),
            ] + (['requirepass "%s"' % password.replace('"', '\\"')] if password else [])) + "\n")
        with open(os.path.join(self.base_dir, "nginx.conf")) as template:
            text = template.read()
        missing = sorted(set(_PLACEHOLDER.findall(text)) - set(env))
        if missing:
            raise DeploymentError("nginx.conf uses unset variables: %s" % ", ".join(missing))
        with open(os.path.join(self.var_dir, "nginx.conf"), "w") as rendered:
            rendered.write(_PLACEHOLDER.sub(lambda m: env[m.group(1)], text))

    @staticmethod
    def write_private(path, text):
        """A file only this user can read (it may hold a password)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)

    def clean_layer(self):
        """Unlink this deployment's IPC shared memory, so no stale lock outlives a killed run."""
        if settings.LAYER != "ipc":
            return
        import posix_ipc
        prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
        for name in ("%s-messages" % prefix, "%s-groups" % prefix):
            for unlink in (posix_ipc.unlink_shared_memory, posix_ipc.unlink_semaphore):
                try:
                    unlink(name)
                except posix_ipc.ExistentialError:
                    pass
            try:
                os.unlink(os.path.join(ipc.SHM_DIR, "%s.lock" % name))
            except FileNotFoundError:
                pass
        shutil.rmtree(os.path.join(ipc.SHM_DIR, "%s-doorbell" % prefix), ignore_errors=True)

    # ---- processes -----------------------------------------------------------------------------

    def start(self, env):
        conf = os.path.join(self.base_dir, "supervisord.conf")
        supervisord = self.binary("supervisord", env, "supervisor (pip; `make venv`)")
        self.process = subprocess.Popen(
            [supervisord, "-n", "-c", conf], env=env, cwd=self.base_dir,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True, preexec_fn=_die_with_parent)

    def wait_ready(self, timeout=90):
        """Block until every program is RUNNING and nginx answers /healthz; DeploymentError if not."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace").strip().splitlines()
                raise DeploymentError("supervisord exited: %s" % (err[-1] if err else "see %s" % self.log_dir))
            try:
                proxy = supervisor.connect(self.socket)
                infos = supervisor.processes(proxy)
                config = {"%s:%s" % (c["group"], c["name"]): c["autostart"]
                          for c in proxy.supervisor.getAllConfigInfo()}
            except Exception:  # not listening yet (no socket, refused, half-open): ask again
                time.sleep(0.2)
                continue
            for info in infos:
                if info["statename"] == supervisor.FATAL:
                    raise DeploymentError("%s could not start: see %s" % (info["name"], self.log_of(info)))
            wanted = [i for i in infos if config.get(i["full"])]
            if all(i["statename"] == supervisor.RUNNING for i in wanted) and self.healthy():
                return infos
            time.sleep(0.3)
        raise DeploymentError("the deployment did not come up within %d s: see %s" % (timeout, self.log_dir))

    def log_of(self, info):
        path = info.get("stdout_logfile") or self.log_dir
        try:
            with open(path, errors="replace") as log:
                last = [line.strip() for line in log.read().splitlines()[-20:] if line.strip()]
        except OSError:
            return path
        return "%s (last line: %s)" % (path, last[-1]) if last else path

    def healthy(self):
        import urllib.request
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % settings.PORT, timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def leftovers(self):
        """Pids of live processes started for this deployment."""
        return processes_of(self.run_dir)

    def stop(self, timeout=90):
        """Stop supervisord (which stops every program with its own stop signal) and sweep up."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in self.leftovers():
            # Whatever a killed supervisord left behind still carries this deployment's environment.
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.clean_layer()

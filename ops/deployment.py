"""One deployment's processes under one supervisord: start (checked and prepared), wait, stop."""
import ctypes
import logging
import os
import signal
import subprocess
import time
import urllib.request

from channels import DEFAULT_CHANNEL_LAYER, channel_layers
from django.conf import settings

from . import database, preflight, programs, releases, render, supervisor
from .environment import MARK, environment
from .exceptions import DeploymentError

logger = logging.getLogger(__name__)


def die_with_parent():
    """In a child before exec: get SIGTERM when the parent dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def processes_of(run_dir):
    """Pids of live processes (this one aside) started for the deployment whose run dir this is:
    they all carry it in their environment (environment.MARK), whatever became of their supervisord."""
    marker = ("%s=%s" % (MARK, run_dir)).encode()
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


def executable(pid):
    """The program a process runs, e.g. "python3.13", "python3.7", "nginx" ("?" if it is gone)."""
    try:
        return os.path.basename(os.readlink("/proc/%d/exe" % pid))
    except OSError:
        return "?"


class Deployment(object):
    """The processes of one var dir (settings.CHAT_PATHS) under one supervisord."""

    def __init__(self):
        self.paths = settings.CHAT_PATHS
        self.process = None  # supervisord, once start() has run it
        self.started = []  # the programs this host runs

    def start(self):
        """Check everything, prepare the files, and run supervisord (DeploymentError, with nothing
        left running, when a check fails)."""
        started = self.started = programs.started_here()
        env = environment()
        preflight.check(env, started)
        self.prepare(started)
        supervisord = preflight.binary("supervisord", env["PATH"], "supervisor (pip; `make venv`)")
        self.process = subprocess.Popen(
            [supervisord, "-n", "-c", os.path.join(settings.BASE_DIR, "supervisord.conf")], env=env,
            cwd=settings.BASE_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True, preexec_fn=die_with_parent)

    def prepare(self, started):
        for directory in (self.paths.run, self.paths.log):
            os.makedirs(directory, exist_ok=True)
        # Leftovers of a run that was killed: nobody is using them (preflight found no supervisord).
        for name in os.listdir(self.paths.run):
            os.unlink(os.path.join(self.paths.run, name))
        if settings.CHAT_ROLE == "all":  # shared memory of this machine's own layer
            self.layer().remove_storage()
        releases.ensure_current()
        render.write(started)
        if programs.named("postgres") in started:
            database.prepare()

    @staticmethod
    def layer():
        return channel_layers[DEFAULT_CHANNEL_LAYER].channel_layer

    def wait_ready(self, timeout=90):
        """Block until every program is RUNNING and nginx answers /healthz; DeploymentError if not."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace").strip().splitlines()
                raise DeploymentError("supervisord exited: %s" % (err[-1] if err else "see %s" % self.paths.log))
            try:
                proxy = supervisor.connect(self.paths.supervisor_socket)
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
        raise DeploymentError("the deployment did not come up within %d s: see %s" % (timeout, self.paths.log))

    def log_of(self, info):
        path = info.get("stdout_logfile") or self.paths.log
        try:
            with open(path, errors="replace") as log:
                last = [line.strip() for line in log.read().splitlines()[-20:] if line.strip()]
        except OSError:
            return path
        return "%s (last line: %s)" % (path, last[-1]) if last else path

    def healthy(self):
        """/healthz through nginx, where this host runs it (other hosts: RUNNING is all they tell)."""
        if programs.named("nginx") not in self.started:
            return True
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % settings.CHAT_PORT, timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def stop(self, timeout=90):
        """Stop supervisord (which stops every program with its own stop signal) and sweep up."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in processes_of(self.paths.run):
            # Whatever a killed supervisord left behind still carries this deployment's environment.
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if settings.CHAT_ROLE == "all":
            self.layer().remove_storage()

"""Real servers for the tests and the benchmarks, on free ports: Redis and PostgreSQL. Imports nothing
of the project: the interface's Python runs the layers' conformance suite with it too."""
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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

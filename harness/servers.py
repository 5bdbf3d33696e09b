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


class SentinelServers(object):
    """A Sentinel-monitored Redis of the tests' own, on loopback: one master, two replicas and three
    Sentinels (quorum 2), each redis-server in a temporary directory of its own."""

    DOWN_AFTER_MS = 1000  # how long a master may not answer before a Sentinel calls it down
    FAILOVER_TIMEOUT_MS = 5000

    def __init__(self, service="chat", password=None, sentinel_password=None):
        self.service = service
        self.password = password
        self.sentinel_password = sentinel_password
        self.dir = tempfile.mkdtemp(prefix="chat-sentinel-")
        self.processes = {}  # port -> Popen, data servers and Sentinels alike
        self.redis_ports = []
        self.sentinel_ports = []
        self.killed_port = None

    @property
    def sentinels(self):
        return ["127.0.0.1:%d" % port for port in self.sentinel_ports]

    def start(self):
        """Start everything and return once the replicas follow the master and every Sentinel
        knows the other two; whatever was started is stopped when that fails."""
        try:
            master = self._start_redis()
            for _ in range(2):
                self._start_redis(replica_of=master)
            wait_for(lambda: self._info(master).get("connected_slaves") == 2, 20, "two replicas")
            for _ in range(3):
                self._start_sentinel(master)
            wait_for(self._sentinels_know_everyone, 30, "three Sentinels knowing each other and the replicas")
        except Exception:
            self.close()
            raise
        return self

    def _start_redis(self, replica_of=None):
        port = free_port()
        directory = tempfile.mkdtemp(prefix="redis-%d-" % port, dir=self.dir)
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", directory]
        if self.password:
            # masterauth on the master too: it replicates from the new master if it comes back
            args += ["--requirepass", self.password, "--masterauth", self.password]
        if replica_of:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        self._spawn(port, args)
        self.redis_ports.append(port)
        return port

    def _start_sentinel(self, master):
        port = free_port()
        # Sentinel rewrites its configuration file (what it learns of replicas, peers, epochs): a
        # writable copy of its own.
        conf = os.path.join(self.dir, "sentinel-%d.conf" % port)
        lines = ["port %d" % port, "bind 127.0.0.1", "dir %s" % self.dir,
                 "sentinel monitor %s 127.0.0.1 %d 2" % (self.service, master),
                 "sentinel down-after-milliseconds %s %d" % (self.service, self.DOWN_AFTER_MS),
                 "sentinel failover-timeout %s %d" % (self.service, self.FAILOVER_TIMEOUT_MS)]
        if self.password:
            lines.append("sentinel auth-pass %s %s" % (self.service, self.password))
        if self.sentinel_password:
            lines += ["requirepass %s" % self.sentinel_password, "sentinel sentinel-pass %s" % self.sentinel_password]
        with open(conf, "w") as out:
            out.write("\n".join(lines) + "\n")
        self._spawn(port, ["redis-server", conf, "--sentinel"])
        self.sentinel_ports.append(port)

    def _spawn(self, port, args):
        self.processes[port] = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: port_open(port), 10, "%s on %d" % (args[0], port))

    def _client(self, port, password):
        import redis  # here, not at the top: the benchmarks import this module without needing it
        return redis.StrictRedis("127.0.0.1", port, password=password, socket_timeout=2,
                                 socket_connect_timeout=2)

    def _info(self, port):
        """INFO replication of a data server as a dict; {} when it does not answer."""
        try:
            return self._client(port, self.password).info("replication")
        except Exception:  # redis.RedisError, without importing redis here
            return {}

    def _sentinels_know_everyone(self):
        """Whether every Sentinel knows the others (a failover needs a quorum) and the replicas (one
        must be there to promote)."""
        for port in self.sentinel_ports:
            try:
                state = self._client(port, self.sentinel_password).sentinel_master(self.service)
            except Exception:
                return False
            if (state["num-other-sentinels"], state["num-slaves"]) != (len(self.sentinel_ports) - 1,
                                                                       len(self.redis_ports) - 1):
                return False
        return True

    def master_port(self):
        """The master's port as the first Sentinel that answers names it."""
        for port in self.sentinel_ports:
            try:
                host, master = self._client(port, self.sentinel_password).sentinel_get_master_addr_by_name(
                    self.service)
                return int(master)
            except Exception:
                continue
        raise AssertionError("no Sentinel answers")

    def kill_master(self):
        """SIGKILL the current master (its connections are reset, nothing is saved); its port."""
        port = self.master_port()
        process = self.processes.pop(port)
        process.kill()
        process.wait(10)
        self.killed_port = port
        return port

    def wait_for_new_master(self, timeout=30):
        """Wait until the Sentinels name another master than the killed one and it answers as one;
        its port."""
        found = []

        def promoted():
            try:
                port = self.master_port()
            except AssertionError:  # no Sentinel answered this time
                return False
            if port != self.killed_port and self._info(port).get("role") == "master":
                found.append(port)
                return True
            return False

        wait_for(promoted, timeout, "Sentinel to promote a replica of %s" % self.service)
        return found[0]

    def close(self):
        """Stop every server and remove the temporary directories."""
        try:
            for process in self.processes.values():
                if process.poll() is None:
                    process.kill()
                process.wait(10)
        finally:
            self.processes = {}
            shutil.rmtree(self.dir, ignore_errors=True)


RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # Debian's, without the wrapper that switches user


class BrokerExited(AssertionError):
    """rabbitmq-server stopped before it listened."""


class RabbitmqServer(object):
    """A RabbitMQ broker of the tests' own on loopback: its epmd, AMQP and distribution ports free
    ones, a vhost and a user with a password, its data in a temporary directory."""

    def __init__(self, user="chat", password="conformance-secret", vhost="chat", management=False):
        self.port, self.epmd_port, self.dist_port = free_port(), free_port(), free_port()
        self.management_port = free_port() if management else None
        self.user, self.password, self.vhost = user, password, vhost
        self.dir = tempfile.mkdtemp(prefix="chat-rabbitmq-")
        self.processes = []

    @property
    def url(self):
        return "amqp://%s:%s@127.0.0.1:%d/%s" % (self.user, self.password, self.port, self.vhost)

    @property
    def management_url(self):
        return "http://%s:%s@127.0.0.1:%d" % (self.user, self.password, self.management_port)

    def environment(self):
        config = os.path.join(self.dir, "rabbitmq.conf")
        with open(config, "w") as out:
            out.write("listeners.tcp.1 = 127.0.0.1:%d\nloopback_users = none\ndefault_vhost = %s\n"
                      "default_user = %s\ndefault_pass = %s\n" % (self.port, self.vhost, self.user, self.password))
            out.write("".join("default_permissions.%s = .*\n" % p for p in ("configure", "read", "write")))
            if self.management_port:
                out.write("management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = %d\n"
                          "management.rates_mode = none\n" % self.management_port)
        plugins = os.path.join(self.dir, "enabled_plugins")
        with open(plugins, "w") as out:
            out.write("[rabbitmq_management].\n" if self.management_port else "[].\n")
        return dict(os.environ, HOME=self.dir, RABBITMQ_MNESIA_BASE=os.path.join(self.dir, "mnesia"),
                    RABBITMQ_LOG_BASE=self.dir, RABBITMQ_LOGS="-", RABBITMQ_CONFIG_FILE=config,
                    ERL_CRASH_DUMP=os.path.join(self.dir, "erl_crash.dump"),
                    RABBITMQ_ENABLED_PLUGINS_FILE=plugins, RABBITMQ_NODENAME="test-%d@localhost" % self.port,
                    ERL_EPMD_PORT=str(self.epmd_port), ERL_EPMD_ADDRESS="127.0.0.1",
                    RABBITMQ_DIST_PORT=str(self.dist_port),
                    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+S 1:1 -kernel inet_dist_use_interface {127,0,0,1}")

    def start(self):
        """epmd, then the broker; on failure nothing is left running (a test class whose set-up
        raises is never torn down)."""
        try:
            return self._start()
        except BaseException:
            self.close()
            raise

    def _start(self):
        env = self.environment()
        log = open(os.path.join(self.dir, "broker.log"), "w")
        # epmd in the foreground, ours: Erlang would otherwise start one as a daemon that outlives us.
        self.processes.append(subprocess.Popen(
            ["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        wait_for(lambda: port_open(self.epmd_port), 10, "epmd on %d" % self.epmd_port)
        for attempt in range(3):
            try:
                self.start_broker(env, log)
                return self
            except BrokerExited:
                # A port free when chosen may be taken before the node binds it (another process's
                # outgoing connections): a fresh node tries fresh ports.
                if attempt == 2:
                    raise
                self.port, self.dist_port = free_port(), free_port()
                self.management_port = self.management_port and free_port()
                env = self.environment()

    def start_broker(self, env=None, log=None):
        log = log or open(os.path.join(self.dir, "broker.log"), "a")
        self.broker = subprocess.Popen([RABBITMQ_SERVER], env=env or self.environment(), stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(self.broker)
        wait_for(self._listening, 60, "rabbitmq-server on %d" % self.port)

    def _listening(self):
        if self.broker.poll() is not None:
            with open(os.path.join(self.dir, "broker.log")) as log:
                raise BrokerExited("rabbitmq-server exited while starting (code %s): %s" % (
                    self.broker.returncode, log.read()[-300:]))
        return port_open(self.port) and (not self.management_port or port_open(self.management_port))

    def stop_broker(self):
        """Stop the broker (its epmd stays), as a restart's first half."""
        _stop_group(self.broker)

    def close(self):
        for process in reversed(self.processes):
            _stop_group(process)
        self.processes = []
        shutil.rmtree(self.dir, ignore_errors=True)


def _stop_group(process):
    """TERM a process started in a session of its own and everything in it (the broker's helpers)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, 15)
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(10)
    try:
        os.killpg(process.pid, 9)  # what it left behind in its session
    except ProcessLookupError:
        pass

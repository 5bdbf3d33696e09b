"""A database host's PostgreSQL (CHAT_ROLE=database): its cluster made at first start, its command line."""
import glob
import logging
import os
import pwd
import shlex
import stat
import subprocess
import tempfile

from django.conf import settings

from .exceptions import DeploymentError

logger = logging.getLogger(__name__)

# PostgreSQL refuses to run as root: a root host runs it as the OS packages' user.
OS_USER = "postgres"


def binaries():
    """The newest installed PostgreSQL's bin directory (Debian's layout)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda path: int(path.split("/")[-2]))
    if not found:
        raise DeploymentError("PostgreSQL is not installed: run `apt-get install postgresql` as root")
    return found[-1]


def account():
    """(user, password, database) the other hosts connect with: DATABASE_URL's, the one configuration."""
    database = settings.DATABASES["default"]
    if not database["ENGINE"].endswith("postgresql") or not database["PASSWORD"]:
        network = settings.CHAT_NETWORK
        raise DeploymentError("CHAT_ROLE=database serves DATABASE_URL: give a postgres://user:password@"
                              "%s:%d/name URL with a password" % (network.address, network.POSTGRES_PORT))
    return database["USER"] or "postgres", database["PASSWORD"], database["NAME"]


def _as_owner():
    """The command prefix that drops root to the PostgreSQL user (nothing when not root)."""
    return ["setpriv", "--reuid", OS_USER, "--regid", OS_USER, "--init-groups"] if os.geteuid() == 0 else []


def command():
    """supervisord's command line for the postmaster: on this host's address only, password
    authentication (scram) for every remote host, no Unix socket (the data dir's owner may not
    write the run dir)."""
    network = settings.CHAT_NETWORK
    return " ".join(shlex.quote(part) for part in _as_owner() + [
        os.path.join(binaries(), "postgres"), "-D", settings.CHAT_PATHS.postgres_data,
        "-c", "listen_addresses=%s" % network.address, "-c", "port=%d" % network.POSTGRES_PORT,
        "-c", "unix_socket_directories=", "-c", "max_connections=200"])


def prepare():
    """Create the cluster, its role and database on the first start (initdb, then single-user mode:
    no server needs to run for it)."""
    data = settings.CHAT_PATHS.postgres_data
    if os.path.exists(os.path.join(data, "PG_VERSION")):
        return
    user, password, name = account()
    os.makedirs(data, mode=0o700, exist_ok=True)
    if os.geteuid() == 0:
        owner = pwd.getpwnam(OS_USER)
        os.chown(data, owner.pw_uid, owner.pw_gid)
        reachable(os.path.dirname(data))
    with tempfile.NamedTemporaryFile("w", prefix="chat-pw-") as pwfile:
        pwfile.write(password)
        pwfile.flush()
        os.chmod(pwfile.name, 0o644)  # readable by the PostgreSQL user for initdb; removed at once
        _run(["initdb", "-D", data, "-U", user, "--pwfile", pwfile.name, "-E", "UTF8",
              "--auth-local=peer", "--auth-host=scram-sha-256"])
    with open(os.path.join(data, "pg_hba.conf"), "a") as hba:
        hba.write("# the cluster's hosts (ops/database.py): password only\n"
                  "host all all samenet scram-sha-256\n")
    _run(["postgres", "--single", "-D", data, "postgres"],
         stdin='CREATE DATABASE "%s" OWNER "%s";\n' % (name.replace('"', ""), user.replace('"', "")))


def reachable(directory):
    """Let the PostgreSQL user pass through the directories above its data (search permission
    only, on those of ours that lack it: a private var dir made with mkdtemp, say)."""
    while directory != "/":
        info = os.stat(directory)
        if info.st_uid == os.geteuid() and not info.st_mode & stat.S_IXOTH:
            logger.info("Letting %s pass through %s (o+x) to reach its data", OS_USER, directory)
            os.chmod(directory, stat.S_IMODE(info.st_mode) | stat.S_IXOTH)
        directory = os.path.dirname(directory)


def _run(argv, stdin=None):
    program = argv[0]
    result = subprocess.run(_as_owner() + [os.path.join(binaries(), program)] + argv[1:], input=stdin,
                            universal_newlines=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd="/")
    if result.returncode:
        lines = result.stdout.strip().splitlines()
        raise DeploymentError("%s failed: %s" % (program, lines[-1] if lines else "exit %d" % result.returncode))

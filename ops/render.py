"""The configuration files a deployment writes at start: nginx's from the checkout's templates
(nginx/), and its own redis-server's redis.conf or RabbitMQ's rabbitmq.conf."""
import glob
import os
import re
import shutil

from django.conf import settings

from my_project.headers import HEADERS

from . import capacity, programs
from .exceptions import DeploymentError

TEMPLATES = "nginx"  # in the checkout: nginx.conf includes the others
PLACEHOLDER = re.compile(r"\{\{ *([a-z_]+) *\}\}")


def nginx_values():
    """What the templates' {{ name }}s stand for: nginx has no variables for paths and ports."""
    paths, network = settings.CHAT_PATHS, settings.CHAT_NETWORK
    planned = capacity.current()
    return {
        # Workers as root would make nginx's workers fall back to "nobody", who cannot reach the
        # sockets in the checkout; run them as the user who owns the deployment.
        "user": "user root;" if os.geteuid() == 0 else "",
        "file_limit": str(planned.file_limit),
        "nginx_workers": str(planned.nginx_workers),
        "worker_connections": str(planned.worker_connections),
        "pid_file": os.path.join(paths.run, "nginx.pid"),
        "log_dir": paths.log,
        "temp_dir": paths.nginx_prefix,
        "conf_dir": paths.nginx_conf_dir,
        "static_dir": paths.static,
        "port": str(settings.CHAT_PORT),
        "topology": settings.CHAT_TOPOLOGY,
        "daphne_servers": upstream_servers(network.daphne_upstreams(settings.CHAT_DAPHNE_PROCS)),
        "gunicorn_servers": upstream_servers(network.gunicorn_upstreams()),
        # Above the 25 s hold and daphne's --http-timeout: daphne answers first.
        "daphne_read_timeout": "%ds" % (settings.CHAT_HTTP_TIMEOUT + 15),
        "security_headers": security_headers(HEADERS),
        # The inverse shape's paths for gunicorn (CHAT_WSGI_PATHS), each a location of its own.
        "wsgi_locations": "\n".join(
            "        location %s {\n            include %s/to-gunicorn.conf;\n        }"
            % (path, paths.nginx_conf_dir) for path in settings.CHAT_WSGI_PATHS),
    }


def security_headers(headers):
    """The server block's lines sending each (name, value) on every answer, nginx's errors included
    (always), and hiding the upstream's own copy."""
    lines = []
    for name, value in headers:
        if "$" in value:
            raise DeploymentError("header %s holds a $, which nginx would read as a variable" % name)
        lines.append("        add_header %s %s always;\n        proxy_hide_header %s;" % (name, _quoted(value), name))
    return "\n".join(lines)


def upstream_servers(addresses):
    """An upstream block's servers. A local socket refuses at once while its server restarts:
    never mark it down (max_fails=0), the next is tried. Another host may not answer at all (cut
    off): after one failed connect, leave it alone for 10 s instead of making every new client wait
    for proxy_connect_timeout."""
    def server(address):
        return "        server %s %s;" % (
            address, "max_fails=0" if address.startswith("unix:") else "max_fails=1 fail_timeout=10s")
    return "\n".join(server(address) for address in addresses)


def templates():
    """{file name: path} of nginx's templates in the checkout."""
    return {os.path.basename(path): path
            for path in sorted(glob.glob(os.path.join(settings.BASE_DIR, TEMPLATES, "*.conf")))}


def nginx_file(name, template_text, values=None):
    """A template with its placeholders filled in; DeploymentError naming unknown ones."""
    values = nginx_values() if values is None else values
    unknown = sorted(set(PLACEHOLDER.findall(template_text)) - set(values))
    if unknown:
        raise DeploymentError("nginx/%s uses unknown placeholders: %s" % (name, ", ".join(unknown)))
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], template_text)


def redis_conf():
    """The deployment's own redis-server: loopback on one machine, a Redis host's address (a
    replica of CHAT_REDIS_REPLICA_OF, when given) in a cluster; no persistence either way."""
    paths = settings.CHAT_PATHS
    address, port = settings.CHAT_NETWORK.redis_address
    lines = [
        "port %d" % port,
        "bind %s" % address,       # another host reaches it on its cluster address, nothing else
        "protected-mode yes",
        'save ""',                 # a channel layer: nothing worth keeping across restarts
        "appendonly no",
        "dir %s" % paths.redis_data,
    ]
    password = settings.CHAT_REDIS_PASSWORD
    if password:
        lines += ["requirepass %s" % _quoted(password), "masterauth %s" % _quoted(password)]
    if settings.CHAT_REDIS_REPLICA_OF:
        lines.append("replicaof %s %s" % tuple(settings.CHAT_REDIS_REPLICA_OF.rsplit(":", 1)))
    if programs.sentinel_layout():
        # A master cut off from its replicas stops taking writes within seconds, rather than taking
        # them until Sentinel's new master is named and losing them all then.
        lines += ["min-replicas-to-write 1", "min-replicas-max-lag 5"]
    return "\n".join(lines) + "\n"


def sentinel_conf():
    """A Redis host's Sentinel: watches the layer's service, starting from the master this host
    replicates (or itself); a majority of the cluster's Sentinels (2 of 3) agree on a failover."""
    network, password = settings.CHAT_NETWORK, settings.CHAT_REDIS_PASSWORD
    config = settings.CHANNEL_LAYERS["default"]["CONFIG"]
    service = config["services"][0]
    master = settings.CHAT_REDIS_REPLICA_OF or "%s:%d" % network.redis_address
    quorum = len(config["sentinels"]) // 2 + 1
    return "\n".join([
        "port %d" % network.SENTINEL_PORT,
        "bind %s" % network.address,
        "dir %s" % settings.CHAT_PATHS.redis_data,
        "requirepass %s" % _quoted(password),          # clients of this Sentinel
        "sentinel sentinel-pass %s" % _quoted(password),  # the other Sentinels
        "sentinel monitor %s %s %s %d" % ((service,) + tuple(master.rsplit(":", 1)) + (quorum,)),
        "sentinel auth-pass %s %s" % (service, _quoted(password)),
        # Seconds without an answer before a master is down: short, the layer is at most once and
        # the chat resends what a failover loses.
        "sentinel down-after-milliseconds %s 2000" % service,
        "sentinel failover-timeout %s 10000" % service,
        "sentinel parallel-syncs %s 2" % service,
    ]) + "\n"


def rabbitmq_conf():
    """The deployment's own RabbitMQ: AMQP and the management API on its loopback ports, one vhost
    and one user for the layer (the URL base_settings gives the layer names them)."""
    ports = settings.CHAT_PATHS.rabbitmq_ports
    return "\n".join([
        "listeners.tcp.1 = 127.0.0.1:%d" % ports.amqp,
        # The default restricts guest to loopback, and there is no guest here: the listeners
        # themselves are loopback only.
        "loopback_users = none",
        "default_vhost = chat",
        "default_user = chat",
        "default_pass = %s" % settings.CHAT_RABBITMQ_PASSWORD,
        "default_permissions.configure = .*",
        "default_permissions.read = .*",
        "default_permissions.write = .*",
        "management.tcp.ip = 127.0.0.1",
        "management.tcp.port = %d" % ports.management,
        "management.rates_mode = none",  # `make status` reads depths only: no message rates to keep
    ]) + "\n"


def _quoted(value):
    return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')


def write(started):
    """Write the files of the programs about to start."""
    paths = settings.CHAT_PATHS
    names = {program.name for program in started}
    if "nginx" in names:
        os.makedirs(paths.nginx_prefix, exist_ok=True)
        os.makedirs(paths.nginx_conf_dir, exist_ok=True)
        values = nginx_values()
        for name, path in templates().items():
            with open(path) as template:
                text = nginx_file(name, template.read(), values)
            with open(os.path.join(paths.nginx_conf_dir, name), "w") as rendered:
                rendered.write(text)
    if "redis" in names or "sentinel" in names:
        os.makedirs(paths.redis_data, exist_ok=True)
    if "redis" in names:
        write_private(paths.redis_conf, redis_conf())
    if "sentinel" in names:
        write_private(paths.sentinel_conf, sentinel_conf())
    if "rabbitmq" in names:
        # Nothing of a channel layer is worth keeping across restarts (the deployment's own Redis
        # runs without persistence too): the broker starts empty, its Erlang cookie new.
        shutil.rmtree(paths.rabbitmq_data, ignore_errors=True)
        os.makedirs(paths.rabbitmq_data, mode=0o700)
        write_private(paths.rabbitmq_conf, rabbitmq_conf())
        with open(paths.rabbitmq_plugins, "w") as plugins:
            plugins.write("[rabbitmq_management].\n")  # the HTTP API the layer's depths() reads
    if settings.CHAT_ROLE == "worker" and settings.CHAT_NETWORK.address:
        write_private(os.path.join(paths.run, "supervisord-inet.conf"), supervisor_inet_conf())


def supervisor_inet_conf():
    """A worker host's supervisord on its cluster address too, for the rollout tool
    (supervisord.conf includes it)."""
    network = settings.CHAT_NETWORK
    return "\n".join([
        "[inet_http_server]",
        "port=%s:%d" % (network.address, network.SUPERVISOR_PORT),
        "username=chat",
        "password=%s" % settings.CHAT_SUPERVISOR_PASSWORD,
    ]) + "\n"


def write_private(path, text):
    """A file only this user can read (it may hold a password)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)

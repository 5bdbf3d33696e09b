"""The configuration files a deployment writes at start: nginx.conf from the checkout's template,
and its own redis-server's redis.conf."""
import os
import re

from django.conf import settings

from .environment import file_limit
from .exceptions import DeploymentError

TEMPLATE = "nginx.conf"  # in the checkout
PROXY_HEADERS = "nginx-proxy.conf"  # in the checkout, included as it is
PLACEHOLDER = re.compile(r"\{\{ *([a-z_]+) *\}\}")


def nginx_values():
    """What the template's {{ name }}s stand for: nginx has no variables for paths and ports."""
    paths = settings.CHAT_PATHS
    return {
        # Workers as root would make nginx's workers fall back to "nobody", who cannot reach the
        # sockets in the checkout; run them as the user who owns the deployment.
        "user": "user root;" if os.geteuid() == 0 else "",
        "file_limit": str(file_limit()),
        "pid_file": os.path.join(paths.run, "nginx.pid"),
        "log_dir": paths.log,
        "temp_dir": paths.nginx_prefix,
        "static_dir": paths.static,
        "proxy_headers": checkout_file(PROXY_HEADERS),
        "port": str(settings.CHAT_PORT),
        "gunicorn_socket": paths.gunicorn_socket,
        "daphne_servers": "\n".join(
            "        server unix:%s max_fails=0;" % paths.daphne_socket(n)
            for n in range(settings.CHAT_DAPHNE_PROCS)),
        # Above the 25 s hold and daphne's --http-timeout: daphne answers first.
        "poll_read_timeout": "%ds" % (settings.CHAT_HTTP_TIMEOUT + 15),
    }


def checkout_file(name):
    return os.path.join(settings.BASE_DIR, name)


def nginx_conf(template_text):
    values = nginx_values()
    unknown = sorted(set(PLACEHOLDER.findall(template_text)) - set(values))
    if unknown:
        raise DeploymentError("nginx.conf uses unknown placeholders: %s" % ", ".join(unknown))
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], template_text)


def redis_conf():
    paths = settings.CHAT_PATHS
    password = settings.CHAT_REDIS_PASSWORD
    return "\n".join([
        "port %d" % paths.redis_port,
        "bind 127.0.0.1",          # loopback only; another machine reaches it through its own URL
        "protected-mode yes",
        'save ""',                 # a channel layer: nothing worth keeping across restarts
        "appendonly no",
        "dir %s" % paths.redis_data,
    ] + (['requirepass "%s"' % password.replace('"', '\\"')] if password else [])) + "\n"


def write(started):
    """Write the files of the programs about to start."""
    paths = settings.CHAT_PATHS
    names = {program.name for program in started}
    if "nginx" in names:
        os.makedirs(paths.nginx_prefix, exist_ok=True)
        with open(checkout_file(TEMPLATE)) as template:
            text = nginx_conf(template.read())
        with open(paths.nginx_conf, "w") as rendered:
            rendered.write(text)
    if "redis" in names:
        os.makedirs(paths.redis_data, exist_ok=True)
        write_private(paths.redis_conf, redis_conf())


def write_private(path, text):
    """A file only this user can read (it may hold a password)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)

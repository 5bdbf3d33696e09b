"""The configuration files a deployment writes at start: nginx's from the checkout's templates
(nginx/), and its own redis-server's redis.conf."""
import glob
import os
import re

from django.conf import settings

from .environment import file_limit
from .exceptions import DeploymentError

TEMPLATES = "nginx"  # in the checkout: nginx.conf includes the others
PLACEHOLDER = re.compile(r"\{\{ *([a-z_]+) *\}\}")


def nginx_values():
    """What the templates' {{ name }}s stand for: nginx has no variables for paths and ports."""
    paths = settings.CHAT_PATHS
    return {
        # Workers as root would make nginx's workers fall back to "nobody", who cannot reach the
        # sockets in the checkout; run them as the user who owns the deployment.
        "user": "user root;" if os.geteuid() == 0 else "",
        "file_limit": str(file_limit()),
        "pid_file": os.path.join(paths.run, "nginx.pid"),
        "log_dir": paths.log,
        "temp_dir": paths.nginx_prefix,
        "conf_dir": paths.nginx_conf_dir,
        "static_dir": paths.static,
        "port": str(settings.CHAT_PORT),
        "topology": settings.CHAT_TOPOLOGY,
        "gunicorn_socket": paths.gunicorn_socket,
        "daphne_servers": "\n".join(
            "        server unix:%s max_fails=0;" % paths.daphne_socket(n)
            for n in range(settings.CHAT_DAPHNE_PROCS)),
        # Above the 25 s hold and daphne's --http-timeout: daphne answers first.
        "daphne_read_timeout": "%ds" % (settings.CHAT_HTTP_TIMEOUT + 15),
        # The inverse shape's paths for gunicorn (CHAT_WSGI_PATHS), each a location of its own.
        "wsgi_locations": "\n".join(
            "        location %s {\n            include %s/to-gunicorn.conf;\n        }"
            % (path, paths.nginx_conf_dir) for path in settings.CHAT_WSGI_PATHS),
    }


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
        os.makedirs(paths.nginx_conf_dir, exist_ok=True)
        values = nginx_values()
        for name, path in templates().items():
            with open(path) as template:
                text = nginx_file(name, template.read(), values)
            with open(os.path.join(paths.nginx_conf_dir, name), "w") as rendered:
                rendered.write(text)
    if "redis" in names:
        os.makedirs(paths.redis_data, exist_ok=True)
        write_private(paths.redis_conf, redis_conf())


def write_private(path, text):
    """A file only this user can read (it may hold a password)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)

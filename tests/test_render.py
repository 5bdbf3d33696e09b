"""The files a deployment writes at start: nginx's configuration for each shape, redis.conf."""
import os
import shutil
import subprocess

import pytest
from django.conf import settings
from django.test import override_settings

from my_project.paths import Paths
from ops import programs, render
from ops.exceptions import DeploymentError

NGINX = [programs.Program("nginx", "nginx", "nginx-light")]


def rendered(tmp_path, topology, **more):
    """The rendered nginx files of a deployment in tmp_path in that shape: {name: text}."""
    paths = Paths(str(tmp_path / topology))
    with override_settings(CHAT_PATHS=paths, CHAT_TOPOLOGY=topology, **more):
        render.write(NGINX)
    return paths, {name: open(os.path.join(paths.nginx_conf_dir, name)).read()
                   for name in os.listdir(paths.nginx_conf_dir)}


@pytest.mark.parametrize("topology", ["split", "asgi", "inverse"])
def test_every_shape_renders_a_configuration_nginx_accepts(tmp_path, topology):
    """Every template is filled in completely, and nginx itself (-t) accepts the result."""
    paths, files = rendered(tmp_path, topology)
    assert not [name for name, text in files.items() if "{{" in text or "}}" in text]
    main = files["nginx.conf"]
    assert "listen 127.0.0.1:%d;" % settings.CHAT_PORT in main
    assert "include %s/%s.conf;" % (paths.nginx_conf_dir, topology) in main
    for n in range(settings.CHAT_DAPHNE_PROCS):
        assert "server unix:%s max_fails=0;" % paths.daphne_socket(n) in main
    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed (make test installs it)")
    for directory in (paths.log, paths.run):  # as the deployment makes them before nginx starts
        os.makedirs(directory, exist_ok=True)
    result = subprocess.run(["nginx", "-t", "-p", paths.nginx_prefix + "/", "-c", paths.nginx_conf,
                             "-e", os.path.join(paths.log, "nginx-error.log")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert result.returncode == 0, result.stdout


def test_each_shape_routes_its_way(tmp_path):
    """split: sockets and polls to daphne by path, the rest to gunicorn (a handshake anywhere to
    daphne); asgi: everything to daphne; inverse: everything to daphne but CHAT_WSGI_PATHS."""
    _, split = rendered(tmp_path, "split")
    assert "location /ws/" in split["split.conf"] and "location /poll/" in split["split.conf"]
    assert "proxy_pass http://$gunicorn_or_daphne;" in split["to-gunicorn.conf"]
    _, asgi = rendered(tmp_path, "asgi")
    assert "to-gunicorn" not in asgi["asgi.conf"]
    _, inverse = rendered(tmp_path, "inverse", CHAT_WSGI_PATHS=["/accounts/", "/admin/"])
    for path in ("/accounts/", "/admin/"):
        assert "location %s {" % path in inverse["inverse.conf"]


def test_an_unknown_placeholder_is_named():
    """A template naming a value the renderer does not have stops the start with its name."""
    with pytest.raises(DeploymentError, match="nginx/x.conf uses unknown placeholders: nonesuch"):
        render.nginx_file("x.conf", "listen {{ port }}; {{ nonesuch }}")


def test_redis_conf_is_loopback_only_with_the_password():
    """The deployment's own redis-server listens on its derived loopback port, keeps nothing on
    disk and requires the password when one is set."""
    with override_settings(CHAT_REDIS_PASSWORD='pa"ss'):
        text = render.redis_conf()
    assert "port %d\nbind 127.0.0.1\n" % settings.CHAT_PATHS.redis_port in text
    assert 'save ""' in text and "appendonly no" in text
    assert 'requirepass "pa\\"ss"' in text

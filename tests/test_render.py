"""The files a deployment writes at start: nginx's configuration for each shape, redis.conf,
rabbitmq.conf."""
import os
import shutil
import stat
import subprocess

import pytest
from django.conf import settings
from django.test import override_settings

from my_project.network import Network
from my_project.paths import Paths
from ops import programs, render
from ops.exceptions import DeploymentError

NGINX = [programs.Program("nginx", "nginx", "nginx-light")]


def rendered(tmp_path, topology, network=None, **more):
    """The rendered nginx files of a deployment in tmp_path in that shape: {name: text}."""
    paths = Paths(str(tmp_path / topology))
    network = network or Network(paths)
    network.paths = paths
    with override_settings(CHAT_PATHS=paths, CHAT_NETWORK=network, CHAT_TOPOLOGY=topology, **more):
        render.write(NGINX)
    return paths, {name: open(os.path.join(paths.nginx_conf_dir, name)).read()
                   for name in os.listdir(paths.nginx_conf_dir)}


@pytest.mark.parametrize("topology", ["split", "asgi", "inverse"])
def test_every_shape_renders_a_configuration_nginx_accepts(tmp_path, topology):
    """Every template is filled in completely, and nginx itself (-t) accepts the result."""
    paths, files = rendered(tmp_path, topology)
    assert not [name for name, text in files.items() if "{{" in text or "}}" in text]
    main = files["nginx.conf"]
    assert "listen 127.0.0.1:%d reuseport;" % settings.CHAT_PORT in main
    assert "include %s/%s.conf;" % (paths.nginx_conf_dir, topology) in main
    for n in range(settings.CHAT_DAPHNE_PROCS):
        assert "server unix:%s max_fails=0;" % paths.daphne_socket(n) in main
    nginx_accepts(paths)


def test_a_balancer_proxies_to_the_hosts_over_tcp(tmp_path):
    """A balancer's upstreams are the interface hosts' daphnes (each host's CHAT_DAPHNE_PROCS ports)
    and the web hosts' gunicorns, each left alone for a while after a failed connect (a host cut
    off does not refuse, it stays silent); nginx accepts it."""
    network = Network(None, "", ["10.9.0.3", "10.9.0.4"], ["10.9.0.7"])
    paths, files = rendered(tmp_path, "split", network)
    main = files["nginx.conf"]
    for host in ("10.9.0.3", "10.9.0.4"):
        for n in range(settings.CHAT_DAPHNE_PROCS):
            assert "server %s:%d max_fails=1 fail_timeout=10s;" % (host, Network.DAPHNE_PORT + n) in main
    assert "server 10.9.0.7:%d max_fails=1" % Network.GUNICORN_PORT in main
    assert "unix:" not in main
    nginx_accepts(paths)


def test_nginx_is_sized_from_the_descriptor_limit(tmp_path, monkeypatch):
    """nginx's workers and connections come from ops/capacity.py for the limit found at start: 20,000
    sockets at 20,000 descriptors take three workers of 19,900 connections (not one of 8192), each
    worker may open every descriptor of the limit, and nginx accepts the result."""
    monkeypatch.setattr("ops.environment.file_limit", lambda: 20000)
    paths, files = rendered(tmp_path, "split", CHAT_MAX_SOCKETS=20000)
    main = files["nginx.conf"]
    assert "\nworker_processes 3;\n" in main
    assert "worker_connections 19900;" in main
    assert "worker_rlimit_nofile 20000;" in main
    nginx_accepts(paths)
    _, files = rendered(tmp_path / "small", "split", CHAT_MAX_SOCKETS=3000)
    assert "\nworker_processes 1;\n" in files["nginx.conf"]


def nginx_accepts(paths):
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


def test_a_redis_host_replicates_and_its_sentinel_watches_the_master():
    """A Redis host of the Sentinel layout listens on its address, replicates its master with the
    password, and its Sentinel watches that master with a majority quorum, password on both sides."""
    network = Network(settings.CHAT_PATHS, "10.9.0.22")
    layers = {"default": dict(settings.CHANNEL_LAYERS["default"], CONFIG={
        "sentinels": ["10.9.0.21:26379", "10.9.0.22:26379", "10.9.0.23:26379"], "services": ["chat"]})}
    with override_settings(CHAT_NETWORK=network, CHAT_REDIS_PASSWORD="pw", CHAT_REDIS_REPLICA_OF="10.9.0.21:6379",
                           CHANNEL_LAYERS=layers):
        redis_text, sentinel_text = render.redis_conf(), render.sentinel_conf()
    assert "port 6379\nbind 10.9.0.22\n" in redis_text
    assert 'masterauth "pw"' in redis_text and "replicaof 10.9.0.21 6379" in redis_text
    assert "bind 10.9.0.22" in sentinel_text and "sentinel monitor chat 10.9.0.21 6379 2" in sentinel_text
    assert 'sentinel auth-pass chat "pw"' in sentinel_text and 'requirepass "pw"' in sentinel_text


def test_rabbitmq_conf_is_loopback_only_with_the_password(tmp_path):
    """The deployment's own broker listens on loopback alone (AMQP and the management API, on the
    var dir's ports), for the layer's vhost and user with the password; the file is the owner's
    alone, and the management plugin is enabled."""
    paths = Paths(str(tmp_path / "var"))
    os.makedirs(paths.run)
    with override_settings(CHAT_PATHS=paths, CHAT_RABBITMQ_PASSWORD="s3cr3t"):
        render.write([programs.named("rabbitmq")])
    ports = paths.rabbitmq_ports
    with open(paths.rabbitmq_conf) as conf:
        settings_of = dict(line.split(" = ", 1) for line in conf.read().splitlines())
    assert settings_of["listeners.tcp.1"] == "127.0.0.1:%d" % ports.amqp
    assert settings_of["management.tcp.ip"] == "127.0.0.1"
    assert settings_of["management.tcp.port"] == str(ports.management)
    assert [key for key in settings_of if key.startswith(("listeners.", "management.tcp", "management.ssl"))] == [
        "listeners.tcp.1", "management.tcp.ip", "management.tcp.port"]  # nothing else listens
    assert (settings_of["default_vhost"], settings_of["default_user"], settings_of["default_pass"]) == (
        "chat", "chat", "s3cr3t")
    assert stat.S_IMODE(os.stat(paths.rabbitmq_conf).st_mode) == 0o600
    with open(paths.rabbitmq_plugins) as plugins:
        assert plugins.read() == "[rabbitmq_management].\n"


def test_the_brokers_data_is_emptied_at_every_start(tmp_path):
    """What a previous run of the broker left (its database, its cookie) is gone when the
    deployment starts it again; the directory is the owner's alone."""
    paths = Paths(str(tmp_path / "var"))
    os.makedirs(os.path.join(paths.rabbitmq_data, "chat-0@localhost"))
    os.makedirs(paths.run)
    with open(os.path.join(paths.rabbitmq_data, ".erlang.cookie"), "w"):
        pass
    with override_settings(CHAT_PATHS=paths, CHAT_RABBITMQ_PASSWORD="pw"):
        render.write([programs.named("epmd"), programs.named("rabbitmq")])
    assert os.listdir(paths.rabbitmq_data) == []
    assert stat.S_IMODE(os.stat(paths.rabbitmq_data).st_mode) == 0o700

"""The files a deployment writes at start: nginx.conf from its template, redis.conf."""
import pytest
from django.conf import settings
from django.test import override_settings

from ops import render
from ops.exceptions import DeploymentError


def test_the_template_is_filled_in_completely():
    """Every placeholder of nginx.conf is replaced: the daphne sockets, the port, the paths."""
    with open(render.checkout_file(render.TEMPLATE)) as template:
        text = render.nginx_conf(template.read())
    assert "{{" not in text and "}}" not in text
    assert "listen 127.0.0.1:%d;" % settings.CHAT_PORT in text
    for n in range(settings.CHAT_DAPHNE_PROCS):
        assert "server unix:%s max_fails=0;" % settings.CHAT_PATHS.daphne_socket(n) in text
    assert "include %s;" % render.checkout_file(render.PROXY_HEADERS) in text


def test_an_unknown_placeholder_is_named():
    """A template naming a value the renderer does not have stops the start with its name."""
    with pytest.raises(DeploymentError, match="unknown placeholders: nonesuch"):
        render.nginx_conf("listen {{ port }}; {{ nonesuch }}")


def test_redis_conf_is_loopback_only_with_the_password():
    """The deployment's own redis-server listens on its derived loopback port, keeps nothing on
    disk and requires the password when one is set."""
    with override_settings(CHAT_REDIS_PASSWORD='pa"ss'):
        text = render.redis_conf()
    assert "port %d\nbind 127.0.0.1\n" % settings.CHAT_PATHS.redis_port in text
    assert 'save ""' in text and "appendonly no" in text
    assert 'requirepass "pa\\"ss"' in text

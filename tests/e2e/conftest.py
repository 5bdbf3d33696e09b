"""Fixtures that start the real deployment (and Redis, PostgreSQL) and always tear it down."""
import itertools
import os

import pytest

from harness.client import Browser
from harness.servers import PostgresServer, RedisServer
from harness.sites import Site

from .deployed import deployed

# The sites under test, each running the whole shared suite: the split shape (the default) on the
# embedded layer, on Redis run by supervisord, and on two external Redis shards with PostgreSQL (so the
# suite runs once against a real PostgreSQL server); the asgi shape on IPC (with a short
# --http-timeout: its pages need workers, and one test stops them); the inverse shape on Redis; the
# split shape on a RabbitMQ broker run by supervisord.
LAYOUTS = {
    "ipc": {"CHAT_LAYER": "ipc"},
    "redis": {"CHAT_LAYER": "redis"},
    "rabbitmq": {"CHAT_LAYER": "rabbitmq"},
    "redis-sharded-postgres": {"CHAT_LAYER": "redis"},  # + shards and PostgreSQL, below
    "asgi-ipc": {"CHAT_LAYER": "ipc", "CHAT_TOPOLOGY": "asgi", "CHAT_HTTP_TIMEOUT": "10"},
    "inverse-redis": {"CHAT_LAYER": "redis", "CHAT_TOPOLOGY": "inverse"},
}
_names = itertools.count()
HERE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def pytest_collection_modifyitems(items):
    # The hook sees the whole session's items: mark this directory's only (-m "not e2e" selects the rest).
    for item in items:
        if str(item.fspath).startswith(HERE):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def postgres():
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_factory():
    servers = []

    def make():
        servers.append(RedisServer().start())
        return servers[-1]
    yield make
    for server in servers:
        server.close()


@pytest.fixture(scope="session", params=list(LAYOUTS))
def site(request, redis_factory):
    """A running deployment, shared by the tests of one layout (each test leaves it as it found it)."""
    env = dict(LAYOUTS[request.param])
    if request.param == "redis-sharded-postgres":
        shards = [redis_factory(), redis_factory()]
        env.update({"CHAT_REDIS_URL": ",".join(s.url for s in shards),
                    "CHAT_DATABASE_URL": request.getfixturevalue("postgres").url})
    with deployed(request, Site(**env), request.param) as deployment:
        yield deployment


@pytest.fixture
def user(site):
    """A browser signed up as a new user on the site."""
    return Browser(site.url).signup("user%d" % next(_names))

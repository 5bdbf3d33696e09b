"""Fixtures that start the real deployment (and Redis, PostgreSQL) and always tear it down."""
import itertools

import pytest

from harness.client import Browser
from harness.servers import PostgresServer, RedisServer, Site

from .deployed import deployed

# The site under test: the embedded default; Redis run by supervisord; and two external Redis shards
# with PostgreSQL (so the suite runs once against a real PostgreSQL server).
LAYOUTS = ["ipc", "redis", "redis-sharded-postgres"]
_names = itertools.count()


def pytest_collection_modifyitems(items):
    for item in items:
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


@pytest.fixture(scope="session", params=LAYOUTS)
def site(request, redis_factory):
    """A running deployment, shared by the tests of one layout (each test leaves it as it found it)."""
    env = {"CHAT_LAYER": "ipc"}
    if request.param == "redis":
        env = {"CHAT_LAYER": "redis"}
    elif request.param == "redis-sharded-postgres":
        shards = [redis_factory(), redis_factory()]
        env = {"CHAT_LAYER": "redis",
               "CHAT_REDIS_URL": ",".join(s.url for s in shards),
               "CHAT_DATABASE_URL": request.getfixturevalue("postgres").url}
    with deployed(request, Site(**env), request.param) as deployment:
        yield deployment


@pytest.fixture
def user(site):
    """A browser signed up as a new user on the site."""
    return Browser(site.url).signup("user%d" % next(_names))

"""Shared set-up: Django configured for the unit tests, a test database for the session."""
import atexit
import os
import shutil
import tempfile

import django
import pytest

from my_project.paths import Paths

# Unit tests get their own var dir and secret; e2e deployments set theirs explicitly.
_VAR = tempfile.mkdtemp(prefix="chat-unit-")
# Also when pytest stops before any session fixture runs (a usage error): the directory exists already.
atexit.register(shutil.rmtree, _VAR, ignore_errors=True)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "my_project.settings")
os.environ["CHAT_VAR_DIR"] = _VAR
# The unit tests serve no static files; WhiteNoise warns about a STATIC_ROOT that does not exist.
os.makedirs(Paths(_VAR).static)
os.environ.setdefault("CHAT_SECRET_KEY", "unit-test-secret")
django.setup()


def pytest_addoption(parser):
    parser.addoption("--soak", action="store_true",
                     help="fault suite: 50 users, 30 s of load before each event, every event 3 times")


def pytest_terminal_summary(terminalreporter):
    from tests.e2e.load import RESULTS, table
    if RESULTS:
        terminalreporter.write_sep("=", "load and faults: messages during each event")
        terminalreporter.write_line(table(RESULTS))
        terminalreporter.write_line("p50/p99: send to ack in ms (room of 1000: send to the last member)")


@pytest.fixture(scope="session", autouse=True)
def django_test_database():
    """Create the test database once; ChannelTestCase/TestCase roll back each test inside it."""
    from django.test.runner import DiscoverRunner
    from django.test.utils import setup_test_environment, teardown_test_environment

    setup_test_environment()
    runner = DiscoverRunner(verbosity=0, interactive=False)
    old_config = runner.setup_databases()
    yield
    runner.teardown_databases(old_config)
    teardown_test_environment()
    from channels import DEFAULT_CHANNEL_LAYER, channel_layers
    channel_layers[DEFAULT_CHANNEL_LAYER].channel_layer.remove_storage()
    shutil.rmtree(_VAR, ignore_errors=True)

"""Shared set-up: Django configured for the unit tests, a test database for the session."""
import os
import shutil
import tempfile

import django
import pytest

# Unit tests get their own var dir and secret; e2e deployments set theirs explicitly.
_VAR = tempfile.mkdtemp(prefix="chat-unit-")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "my_project.settings")
os.environ["CHAT_VAR_DIR"] = _VAR
os.environ.setdefault("CHAT_SECRET_KEY", "unit-test-secret")
django.setup()


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
    shutil.rmtree(_VAR, ignore_errors=True)

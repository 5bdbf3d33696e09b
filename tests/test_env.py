"""The settings' readers of CHAT_* variables (and the two names platforms set without the prefix)."""
from unittest import mock

import pytest
from django.core.exceptions import ImproperlyConfigured

from my_project import env


def test_platform_names_are_read_when_the_chat_ones_are_unset():
    """DATABASE_URL and REDIS_URL, as platforms set them, count when CHAT_* are unset; CHAT_* wins."""
    with mock.patch.dict("os.environ", {"REDIS_URL": "redis://platform:6379/0"}, clear=True):
        assert env.redis_urls("REDIS_URL") == ["redis://platform:6379/0"]
    with mock.patch.dict("os.environ", {"REDIS_URL": "redis://platform:6379/0",
                                        "CHAT_REDIS_URL": "redis://ours:6379/0"}, clear=True):
        assert env.redis_urls("REDIS_URL") == ["redis://ours:6379/0"]
    with mock.patch.dict("os.environ", {"PORT": "5000"}, clear=True):
        assert env.integer("PORT", 8000) == 8000  # only those two names: a platform's PORT is daphne's


def test_path_prefixes_must_be_whole_segments():
    """CHAT_WSGI_PATHS takes prefixes like /accounts/; anything else is named with an example."""
    with mock.patch.dict("os.environ", {"CHAT_WSGI_PATHS": "/accounts/,/admin/"}, clear=True):
        assert env.path_prefixes("WSGI_PATHS") == ["/accounts/", "/admin/"]
    for bad in ("accounts", "/accounts", "/a b/"):
        with mock.patch.dict("os.environ", {"CHAT_WSGI_PATHS": bad}, clear=True):
            with pytest.raises(ImproperlyConfigured, match="is not a path prefix"):
                env.path_prefixes("WSGI_PATHS")

"""Typed readers for the CHAT_* environment variables that drive the settings."""
import os
import re
from urllib.parse import unquote, urlsplit

try:
    from django.core.exceptions import ImproperlyConfigured
except ImportError:  # the interface server's Python has no Django: the same error, its own class
    class ImproperlyConfigured(Exception):
        """A CHAT_* variable that cannot be used; the message says which and how to fix it."""

PREFIX = "CHAT_"
# Read without the prefix too when unset, as platforms (Heroku and alike) name them.
PLATFORM_NAMES = ("DATABASE_URL", "REDIS_URL")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def raw(name, default=None):
    value = os.environ.get(PREFIX + name)
    if value is None and name in PLATFORM_NAMES:
        value = os.environ.get(name)
    return default if value is None else value


def string(name, default=None):
    value = raw(name)
    return default if value is None or value == "" else value


def boolean(name, default=False):
    value = raw(name)
    if value is None:
        return default
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise ImproperlyConfigured(
        "%s%s=%r is not a boolean; use 1/0, true/false, yes/no or on/off" % (PREFIX, name, value))


def integer(name, default, minimum=None, maximum=None):
    return _numeric(name, default, int, "a whole number", minimum, maximum)


def number(name, default, minimum=None, maximum=None):
    return _numeric(name, default, float, "a number", minimum, maximum)


def _numeric(name, default, convert, kind, minimum, maximum):
    value = raw(name)
    if value is None or value == "":
        return default
    try:
        result = convert(value)
    except ValueError:
        raise ImproperlyConfigured("%s%s=%r is not %s" % (PREFIX, name, value, kind))
    if (minimum is not None and result < minimum) or (maximum is not None and result > maximum):
        raise ImproperlyConfigured("%s%s=%s is out of range [%s, %s]" % (
            PREFIX, name, result, minimum, "" if maximum is None else maximum))
    return result


def strings(name, default=()):
    """A comma-separated list; blanks are dropped."""
    value = raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def path_prefixes(name, default=()):
    """A comma-separated list of URL path prefixes, each from "/" to "/" (e.g. /accounts/)."""
    prefixes = strings(name, default)
    for prefix in prefixes:
        if not re.match(r"^/([A-Za-z0-9._~-]+/)+$", prefix):
            raise ImproperlyConfigured(
                "%s%s: %r is not a path prefix; give ones like /accounts/,/admin/" % (PREFIX, name, prefix))
    return prefixes


def choice(name, choices, default):
    value = string(name, default).lower()
    if value not in choices:
        raise ImproperlyConfigured("%s%s=%r is not one of: %s" % (
            PREFIX, name, value, ", ".join(choices)))
    return value


def database(url):
    """DATABASES['default'] from a sqlite:///path or postgres://user:pass@host:port/name URL."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:///relative.db and sqlite:////absolute.db, as SQLAlchemy spells them
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not path:
            raise ImproperlyConfigured("%sDATABASE_URL=%r names no file" % (PREFIX, url))
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": path}
    if parts.scheme in ("postgres", "postgresql"):
        name = parts.path.lstrip("/")
        if not name:
            raise ImproperlyConfigured("%sDATABASE_URL=%r names no database" % (PREFIX, url))
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(name),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            # an empty host means the local unix socket; ?host=/dir picks its directory
            "HOST": unquote(parts.hostname or _query(parts.query).get("host", "")),
            "PORT": str(parts.port or ""),
        }
    raise ImproperlyConfigured(
        "%sDATABASE_URL=%r: use sqlite:///path.db or postgres://user:pass@host:port/name" % (PREFIX, url))


def redis_urls(name):
    urls = strings(name)
    for url in urls:
        if urlsplit(url).scheme not in ("redis", "rediss"):
            raise ImproperlyConfigured(
                "%s%s: %r is not a redis:// URL (give one, or several separated by commas)" % (
                    PREFIX, name, url))
    return urls


def amqp_url(name):
    """An amqp:// (or amqps://) URL naming its virtual host, or None when unset."""
    url = string(name)
    if url is not None and (urlsplit(url).scheme not in ("amqp", "amqps") or not urlsplit(url).hostname):
        raise ImproperlyConfigured("%s%s=%r is not an AMQP URL: give one like "
                                   "amqp://user:password@host:5672/vhost" % (PREFIX, name, url))
    return url


def _query(query):
    return dict(pair.split("=", 1) for pair in query.split("&") if "=" in pair)

"""The one settings module: every daphne, worker and gunicorn process reads it from CHAT_* variables
(the part the interface server reads without Django lives in base_settings.py)."""
import os

from django.core.exceptions import ImproperlyConfigured

from . import env
from .base_settings import (  # noqa: F401 (settings Django and the project read from here)
    BASE_DIR, CHANNEL_LAYERS, CHAT_HTTP_TIMEOUT, CHAT_LAYER, CHAT_LAYER_FLAVOR, CHAT_LAYER_SERVER, CHAT_LOG_FORMAT,
    CHAT_LOG_LEVEL, CHAT_MAX_SOCKETS, CHAT_NETWORK, CHAT_PATHS, CHAT_POOL, CHAT_POOLS, CHAT_PROXY_HOPS,
    CHAT_QUIET_LOGGERS, CHAT_RABBITMQ_PASSWORD, CHAT_REDIS_PASSWORD, CHAT_ROLE, CHAT_WS_PROTOCOLS
)

DEBUG = env.boolean("DEBUG", False)
SECRET_KEY = env.string("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "CHAT_SECRET_KEY is required when CHAT_DEBUG is off (`make run` generates one in var/secret_key)")
    SECRET_KEY = "insecure-development-key"
ALLOWED_HOSTS = env.strings("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])

# The release a checkout's code is (a release made by `manage.py release create` names itself:
# ops.releases.running()).
CHAT_RELEASE = env.string("RELEASE", "dev")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ops.apps.OpsConfig",  # before channels: its runworker (channels' own, instrumented) takes precedence
    "channels",
    "channels.delay",  # `manage.py rundelay`: the timer behind long-poll time-outs
    "chat",
    "tokens",  # personal API tokens (tokens/auth.py)
    "notifications",
    "guard",  # login throttling (its table), multipart refusal
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Outermost but SecurityMiddleware's: their headers and cookie attributes reach every response,
    # the refusals below included; the multipart refusal comes before anything reads request.POST.
    "my_project.headers.security_headers",
    "my_project.cookies.same_site",
    "guard.multipart.refuse_multipart",
    # Static files from the app where nothing in front serves them (the Procfile's daphne on a
    # platform); behind nginx, nginx answers /static/ before a request reaches Django.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "ops.middleware.served_by",
]

ROOT_URLCONF = "my_project.urls"
WSGI_APPLICATION = "my_project.wsgi.application"

TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.debug",
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
        "notifications.context_processors.unread",
    ]},
}]

DATABASES = {"default": env.database(env.string("DATABASE_URL", "sqlite:///" + CHAT_PATHS.database))}
# Keep connections across requests and consumers: a worker otherwise opens (and tunes) a new
# connection for every message it handles.
DATABASES["default"]["CONN_MAX_AGE"] = env.integer("DB_CONN_MAX_AGE", 600, minimum=0)
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several worker processes write at once: wait for the lock instead of failing (WAL is set per
    # connection, and the file's directory made, in ops.apps).
    DATABASES["default"]["OPTIONS"] = {"timeout": 20}
else:
    # A worker host cut off in the middle of a transaction keeps its row locks (the per-room id
    # counter) until its link returns: every other worker storing into that room waited (13.8 s
    # without an ack in the cross-host fault suite). The server ends such a session after this
    # long idle inside a transaction (the chat's transactions take milliseconds: 1 s, not 5, which
    # kept users waiting 5-6 s at the median through a cut, docs/scaling.md); the cut worker's
    # frames are lost and resent by their clients. Keepalives find a vanished client sooner too.
    DATABASES["default"]["OPTIONS"] = {
        "options": "-c idle_in_transaction_session_timeout=%d" % (
            1000 * env.integer("DB_IDLE_IN_TRANSACTION_TIMEOUT", 1, minimum=1)),
        "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_L10N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = CHAT_PATHS.static

# Behind nginx: trust its X-Forwarded-Proto, and mark cookies secure when served over HTTPS.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.boolean("HTTPS", False)
SESSION_COOKIE_HTTPONLY = True
# The page hands client.js the CSRF token (room.html's data-csrf): no script reads the cookie.
CSRF_COOKIE_HTTPONLY = True
# HSTS on secure responses only when the site is served over HTTPS (a year unless CHAT_HSTS_SECONDS).
SECURE_HSTS_SECONDS = env.integer("HSTS_SECONDS", 31536000, minimum=0) if env.boolean("HTTPS", False) else 0
# X-Frame-Options and X-Content-Type-Options are in my_project/headers.py HEADERS with the rest (nginx
# and the long-polls send that list too), not also in Django's X_FRAME_OPTIONS and NOSNIFF settings.
# No "X-XSS-Protection: 1; mode=block" (SecurityMiddleware's): browsers' XSS auditors are gone, and where
# one remains its blocking mode could be used to cut scripts out of a page; HEADERS sends "0" instead.
SECURE_BROWSER_XSS_FILTER = False

# Per-socket state between frames (user, room, frame order, rate limit): next to the layer, not in
# the database (see my_project/channel_sessions.py); upstream keeps it in SESSION_ENGINE.
CHANNEL_SESSION_ENGINE = ("django.contrib.sessions.backends.db" if CHAT_LAYER_FLAVOR == "upstream"
                          else "my_project.channel_sessions")
CHAT_CHANNEL_SESSION_TTL = env.integer("CHANNEL_SESSION_TTL", 86400, minimum=60)

# ---- Processes (read by `manage.py serve`, which renders supervisord's and nginx's settings) -----
# The Deploying guide's shape: "split" (WebSockets and long-polls to daphne, pages to gunicorn),
# "asgi" (everything to daphne, no gunicorn), "inverse" (everything to daphne but CHAT_WSGI_PATHS).
CHAT_TOPOLOGY = env.choice("TOPOLOGY", ("split", "asgi", "inverse"), "split")
CHAT_WSGI_PATHS = env.path_prefixes("WSGI_PATHS", ["/accounts/"])  # the inverse shape's gunicorn paths
CHAT_PORT = env.integer("PORT", 8000, minimum=1, maximum=65535)
# The interface server's virtualenv (bin/setup-interface builds it with a current CPython): daphne
# runs from it when it exists; empty: daphne runs on the workers' Python.
_interface_venv = env.raw("INTERFACE_VENV", "venv-interface")
CHAT_INTERFACE_VENV = os.path.join(BASE_DIR, _interface_venv) if _interface_venv else ""
CHAT_DAPHNE_PROCS = env.integer("DAPHNE_PROCS", 2, minimum=1, maximum=16)
CHAT_WORKERS_REALTIME = env.integer("WORKERS_REALTIME", 2, minimum=1, maximum=64)
CHAT_WORKERS_BACKGROUND = env.integer("WORKERS_BACKGROUND", 1, minimum=1, maximum=64)
CHAT_WORKERS_DEFAULT = env.integer("WORKERS_DEFAULT", 1, minimum=1, maximum=64)
CHAT_GUNICORN_WORKERS = env.integer("GUNICORN_WORKERS", 2, minimum=1, maximum=64)
# Worker hosts' supervisord serves XML-RPC on their address for the rollout tool, with this password
# (user "chat"; CHAT_WORKER_HOSTS lists them).
CHAT_SUPERVISOR_PASSWORD = env.string("SUPERVISOR_PASSWORD", "")
if CHAT_ROLE == "worker" and CHAT_NETWORK.address and not CHAT_SUPERVISOR_PASSWORD:
    raise ImproperlyConfigured("CHAT_ROLE=worker on CHAT_HOST_ADDRESS serves the rollout tool: set "
                               "CHAT_SUPERVISOR_PASSWORD (the same on every host)")
# Where releases live: shared by a cluster's worker hosts (a network filesystem, or a copy kept the
# same by the deploy tool), so one `current` link moves them all and a rollout restarts them in turn.
CHAT_RELEASES_DIR = env.string("RELEASES_DIR", CHAT_PATHS.releases)
# A Redis host's master ("address:port") when its redis-server starts as a replica (Sentinel layout).
CHAT_REDIS_REPLICA_OF = env.string("REDIS_REPLICA_OF", "")

# ---- Logins (guard/) -----------------------------------------------------------------------
# After this many failed logins in CHAT_LOGIN_WINDOW seconds, one username (or one client address)
# is refused with 429 until the oldest failure ages out of the window.
CHAT_LOGIN_FAILURES = env.integer("LOGIN_FAILURES", 5, minimum=1)
CHAT_LOGIN_WINDOW = env.integer("LOGIN_WINDOW", 900, minimum=1)

# ---- Chat ----------------------------------------------------------------------------------
CHAT_MESSAGE_MAX_LENGTH = env.integer("MESSAGE_MAX_LENGTH", 2000, minimum=1)
# Per-socket token bucket: a burst of RATE_BURST frames, refilled at RATE_PER_SECOND.
CHAT_RATE_BURST = env.integer("RATE_BURST", 20, minimum=1)
CHAT_RATE_PER_SECOND = env.number("RATE_PER_SECOND", 5.0, minimum=0.01)
# A long-poll with nothing new is held this long (without a worker), then answered [].
CHAT_POLL_HOLD = env.integer("POLL_HOLD", 25, minimum=1)
# A socket not heard from (clients ping every 20 s) for this long no longer counts as online.
CHAT_PRESENCE_TTL = env.integer("PRESENCE_TTL", 60, minimum=5)
# Rooms with more sockets than this get no join/leave broadcasts (each would reach every member).
CHAT_PRESENCE_BROADCAST_MAX = env.integer("PRESENCE_BROADCAST_MAX", 200, minimum=0)
# A presence frame names at most this many online users (and says whether more are online).
CHAT_PRESENCE_ONLINE_MAX = env.integer("PRESENCE_ONLINE_MAX", 100, minimum=1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": CHAT_LOG_FORMAT}},
    # Every handler escapes control characters in messages: a request's path cannot forge a line.
    "filters": {"escape_controls": {"()": "my_project.logfilter.EscapeControlCharacters"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["escape_controls"]}},
    "root": {"handlers": ["console"], "level": CHAT_LOG_LEVEL},
    "loggers": dict({"django.db.backends": {"level": "INFO"}},
                    **{name: {"level": level} for name, level in CHAT_QUIET_LOGGERS.items()}),
}

if CHAT_HTTP_TIMEOUT < CHAT_POLL_HOLD + 5:
    raise ImproperlyConfigured(
        "CHAT_HTTP_TIMEOUT=%d must be at least CHAT_POLL_HOLD + 5 (%d): daphne would answer a held "
        "long-poll with 503 before the hold ends" % (CHAT_HTTP_TIMEOUT, CHAT_POLL_HOLD + 5))

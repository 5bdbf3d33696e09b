"""The one settings module: every daphne, worker and gunicorn process reads it from CHAT_* variables."""
import os
from urllib.parse import quote

from django.core.exceptions import ImproperlyConfigured

from . import env
from .paths import Paths

BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Runtime state (database, sockets, logs, static files) of one deployment; tests give each its own.
CHAT_PATHS = Paths(env.string("VAR_DIR", os.path.join(BASE_DIR, "var")))

DEBUG = env.boolean("DEBUG", False)
SECRET_KEY = env.string("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "CHAT_SECRET_KEY is required when CHAT_DEBUG is off (`make run` generates one in var/secret_key)")
    SECRET_KEY = "insecure-development-key"
ALLOWED_HOSTS = env.strings("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])

# Which process this is, for logs, health counters and the routing proofs in the tests.
CHAT_POOL = env.string("POOL", "web")
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
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files from the app where nothing in front serves them (the Procfile's daphne on a
    # platform); behind nginx, nginx answers /static/ before a request reaches Django.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_BROWSER_XSS_FILTER = True

# ---- Channel layer -------------------------------------------------------------------------
if env.string("LAYER", "").lower() in ("inmemory", "in-memory", "memory"):
    raise ImproperlyConfigured(
        "CHAT_LAYER=%s is the Deploying guide's single-process fallback (daphne with in-process "
        "workers): a group send reaches only the sockets of one process, so most of a room would "
        "miss its messages; use redis (or ipc on one machine)" % env.string("LAYER"))
CHAT_LAYER = env.choice("LAYER", ("ipc", "redis"), "ipc")
# "upstream": the libraries' own send and receive with their default capacities, for the
# benchmarks' side-by-side comparison; "tuned" (the default): the project's layer classes.
CHAT_LAYER_FLAVOR = env.choice("LAYER_FLAVOR", ("tuned", "upstream"), "tuned")
# The program this deployment runs for its layer's server, if any (a redis-server of its own when
# no CHAT_REDIS_URL is given; see ops/programs.py).
CHAT_LAYER_SERVER = None
_layer_config = {
    "expiry": env.integer("LAYER_EXPIRY", 60, minimum=1),
    "capacity": env.integer("LAYER_CAPACITY", 100, minimum=1),
    # All sockets of one daphne share one reply list (daphne.response.<server>!), and group sends
    # drop silently when a member's list is full: size it for every socket of a daphne times a burst.
    "channel_capacity": dict.fromkeys(("daphne.response*", "http.response*"),
                                      env.integer("RESPONSE_CAPACITY", 5000, minimum=1)),
}
if CHAT_LAYER == "ipc":
    _backend = "my_project.layers.IPCChannelLayer"
    # Shared memory names are global to the machine: one prefix per deployment (var dir).
    _layer_config["prefix"] = env.string("IPC_PREFIX", CHAT_PATHS.ipc_prefix)
else:
    _backend = "my_project.layers.RedisChannelLayer"
    # The password of the deployment's own redis-server (given in CHAT_REDIS_URL otherwise).
    CHAT_REDIS_PASSWORD = env.string("REDIS_PASSWORD", "")
    _hosts = env.redis_urls("REDIS_URL")  # several = sharded by channel name
    if not _hosts:
        # `manage.py serve` runs a redis-server of its own, on a loopback port of its var dir's.
        CHAT_LAYER_SERVER = "redis"
        _hosts = ["redis://%s127.0.0.1:%d/0" % (
            ":%s@" % quote(CHAT_REDIS_PASSWORD, safe="") if CHAT_REDIS_PASSWORD else "", CHAT_PATHS.redis_port)]
    _layer_config.update({
        "hosts": _hosts,
        # A password in a URL is %-encoded (redis-py 2.10 would send it as written otherwise).
        "connection_kwargs": {"decode_components": True},
        # Seconds a receive blocks on one shard; short when there are several (see
        # layers/redis_layer.py). Fractions need Redis >= 6.
        "blpop_timeout": env.number("REDIS_BLPOP_TIMEOUT", 5 if len(_hosts) == 1 else 0.2, minimum=0.01),
        "prefix": env.string("REDIS_PREFIX", "chat:"),
    })
    if env.strings("LAYER_ENCRYPTION_KEYS"):
        _layer_config["symmetric_encryption_keys"] = env.strings("LAYER_ENCRYPTION_KEYS")
# Per-socket state between frames (user, room, frame order, rate limit): next to the layer, not in
# the database (see my_project/channel_sessions.py); upstream keeps it in SESSION_ENGINE.
CHANNEL_SESSION_ENGINE = "my_project.channel_sessions"
CHAT_CHANNEL_SESSION_TTL = env.integer("CHANNEL_SESSION_TTL", 86400, minimum=60)
if CHAT_LAYER_FLAVOR == "upstream":
    CHANNEL_SESSION_ENGINE = "django.contrib.sessions.backends.db"
    _backend = _backend.replace("my_project.layers.", "my_project.layers.upstream.")
    for _tuning in ("capacity", "channel_capacity", "blpop_timeout"):
        _layer_config.pop(_tuning, None)
CHANNEL_LAYERS = {"default": {
    "BACKEND": _backend, "CONFIG": _layer_config, "ROUTING": "my_project.routing.channel_routing"}}

# ---- Processes (read by `manage.py serve`, which renders supervisord's and nginx's settings) -----
# The Deploying guide's shape: "split" (WebSockets and long-polls to daphne, pages to gunicorn),
# "asgi" (everything to daphne, no gunicorn), "inverse" (everything to daphne but CHAT_WSGI_PATHS).
CHAT_TOPOLOGY = env.choice("TOPOLOGY", ("split", "asgi", "inverse"), "split")
CHAT_WSGI_PATHS = env.path_prefixes("WSGI_PATHS", ["/accounts/"])  # the inverse shape's gunicorn paths
CHAT_PORT = env.integer("PORT", 8000, minimum=1, maximum=65535)
CHAT_DAPHNE_PROCS = env.integer("DAPHNE_PROCS", 2, minimum=1, maximum=16)
CHAT_WORKERS_REALTIME = env.integer("WORKERS_REALTIME", 2, minimum=1, maximum=64)
CHAT_WORKERS_BACKGROUND = env.integer("WORKERS_BACKGROUND", 1, minimum=1, maximum=64)
CHAT_WORKERS_DEFAULT = env.integer("WORKERS_DEFAULT", 1, minimum=1, maximum=64)
CHAT_GUNICORN_WORKERS = env.integer("GUNICORN_WORKERS", 2, minimum=1, maximum=64)
# How long daphne waits for a worker's answer to an HTTP request before it answers 503.
CHAT_HTTP_TIMEOUT = env.integer("HTTP_TIMEOUT", 60, minimum=5)
# WebSocket subprotocols daphne selects (the first a client offers that is listed here): the
# versions of chat/protocol.py's frames this site speaks (chat.protocol.VERSION). Channels 1.x's
# runserver reads CHANNELS_WS_PROTOCOLS for the same; daphne's command line has --ws-protocol.
CHAT_WS_PROTOCOLS = env.strings("WS_PROTOCOLS", ["chat.v1"])

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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {
        "format": "%(asctime)s " + CHAT_POOL + "[%(process)d] %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"],
             "level": env.choice("LOG_LEVEL", ("debug", "info", "warning", "error"), "info").upper()},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

if CHAT_HTTP_TIMEOUT < CHAT_POLL_HOLD + 5:
    raise ImproperlyConfigured(
        "CHAT_HTTP_TIMEOUT=%d must be at least CHAT_POLL_HOLD + 5 (%d): daphne would answer a held "
        "long-poll with 503 before the hold ends" % (CHAT_HTTP_TIMEOUT, CHAT_POLL_HOLD + 5))

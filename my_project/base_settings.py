"""The settings the interface server reads too, without Django (it may run on a Python Django 1.11
does not import on): the var dir, the channel layer, daphne's limits, logging. settings.py takes
them from here; so does `python -m interface`."""
import hashlib
import hmac
import os
import re
from urllib.parse import quote

from . import env
from .env import ImproperlyConfigured
from .network import POOLS, ROLES, Network
from .paths import Paths

BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Runtime state (database, sockets, logs, static files) of one deployment; tests give each its own.
CHAT_PATHS = Paths(env.string("VAR_DIR", os.path.join(BASE_DIR, "var")))
# Which process this is, for logs, health counters and the routing proofs in the tests.
CHAT_POOL = env.string("POOL", "web")
CHAT_LOG_LEVEL = env.choice("LOG_LEVEL", ("debug", "info", "warning", "error"), "info").upper()
CHAT_LOG_FORMAT = "%(asctime)s " + CHAT_POOL + "[%(process)d] %(levelname)s %(name)s: %(message)s"
# Libraries whose lines are noise at the deployment's level: pika logs every connection and channel it
# opens or closes, and a traceback at ERROR for every refused connection attempt while a broker
# restarts; the RabbitMQ layer logs each loss and recovery itself, in one line.
CHAT_QUIET_LOGGERS = {"pika": "CRITICAL"}

# ---- Hosts (docs/scaling.md) ---------------------------------------------------------------
# What this host runs: "all" (one machine, the default) or one role of a cluster (ops/programs.py).
CHAT_ROLE = env.choice("ROLE", ROLES, "all")
# The pools a worker host runs.
CHAT_POOLS = env.strings("POOLS", POOLS)
if set(CHAT_POOLS) - set(POOLS) or not CHAT_POOLS:
    raise ImproperlyConfigured("CHAT_POOLS=%s: give some of %s, comma-separated" % (
        env.raw("POOLS"), ",".join(POOLS)))
# This host's address among the cluster's: its daphnes, gunicorn, Redis and PostgreSQL listen there
# (TCP, on the ports of network.Network) instead of on Unix sockets and loopback.
CHAT_NETWORK = Network(CHAT_PATHS, env.string("HOST_ADDRESS", ""), env.strings("INTERFACE_HOSTS"),
                       env.strings("WEB_HOSTS"), env.strings("WORKER_HOSTS"))
if CHAT_ROLE in ("interface", "web", "redis", "database") and not CHAT_NETWORK.address:
    raise ImproperlyConfigured("CHAT_ROLE=%s serves other hosts: set CHAT_HOST_ADDRESS to this host's "
                               "address in the cluster" % CHAT_ROLE)
if CHAT_ROLE == "balancer" and not CHAT_NETWORK.interface_hosts:
    raise ImproperlyConfigured("CHAT_ROLE=balancer needs the interface hosts' addresses: set "
                               "CHAT_INTERFACE_HOSTS (and CHAT_WEB_HOSTS for gunicorn's)")

# ---- Channel layer -------------------------------------------------------------------------
if env.string("LAYER", "").lower() in ("inmemory", "in-memory", "memory"):
    raise ImproperlyConfigured(
        "CHAT_LAYER=%s is the Deploying guide's single-process fallback (daphne with in-process "
        "workers): a group send reaches only the sockets of one process, so most of a room would "
        "miss its messages; use redis (or ipc on one machine)" % env.string("LAYER"))
CHAT_LAYER = env.choice("LAYER", ("ipc", "redis", "rabbitmq"), "ipc")
# "upstream": the libraries' own send and receive with their default capacities, for the
# benchmarks' side-by-side comparison; "tuned" (the default): the project's layer classes.
CHAT_LAYER_FLAVOR = env.choice("LAYER_FLAVOR", ("tuned", "upstream"), "tuned")
# The server this deployment runs for its layer, if any: "redis" (a redis-server of its own when no
# CHAT_REDIS_URL is given) or "rabbitmq" (a broker of its own when no CHAT_AMQP_URL is given); the
# programs it takes are in ops/programs.py.
CHAT_LAYER_SERVER = None
# The password of the deployment's own redis-server (given in CHAT_REDIS_URL otherwise).
CHAT_REDIS_PASSWORD = env.string("REDIS_PASSWORD", "")
if CHAT_ROLE == "redis" and not CHAT_REDIS_PASSWORD:
    raise ImproperlyConfigured("CHAT_ROLE=redis listens for other hosts: set CHAT_REDIS_PASSWORD "
                               "(the layer's URLs carry it too)")
# The password of the deployment's own RabbitMQ (given in CHAT_AMQP_URL otherwise); derived below
# when unset.
CHAT_RABBITMQ_PASSWORD = env.string("RABBITMQ_PASSWORD", "")
# The WebSockets the deployment must hold at once (one room may hold them all): nginx's workers
# are sized from it, `make run` refuses too few daphnes for it (ops/capacity.py), and the reply
# lists below follow it.
CHAT_MAX_SOCKETS = env.integer("MAX_SOCKETS", 20000, minimum=1)
# Seconds a WebSocket handshake may wait for the realtime pool to accept it: daphne's connect and
# opening-handshake timeouts (interface/__main__.py) and, on the Redis layer, the life of a
# websocket.connect message, so no worker runs the connect of a handshake daphne has given up on.
CHAT_CONNECT_TIMEOUT = env.integer("CONNECT_TIMEOUT", 30, minimum=1)
# Where a handshake daphne gave up on expires unseen (the Redis layer, tuned), websocket.connect
# holds one daphne's share of CHAT_MAX_SOCKETS: a reconnect storm waits there for the pool instead
# of being refused with 503 and retrying (each refusal costs nginx and daphne a handshake: 11,831
# of them in a storm of 10,000 at 500, which took 41 s; 5000: 7,848 and 35 s).
_CONNECTS_EXPIRE = CHAT_LAYER == "redis" and CHAT_LAYER_FLAVOR == "tuned"
_layer_config = {
    "expiry": env.integer("LAYER_EXPIRY", 60, minimum=1),
    "capacity": env.integer("LAYER_CAPACITY", 100, minimum=1),
    # All sockets of one daphne share one reply list (daphne.response.<server>!), and group sends
    # drop silently when a member's list is full: one broadcast to a room of CHAT_MAX_SOCKETS puts
    # one message per member there, all of them on one daphne while the other restarts; twice that
    # for a second broadcast before daphne has read the first.
    "channel_capacity": dict(dict.fromkeys(("daphne.response*", "http.response*"),
                                           env.integer("RESPONSE_CAPACITY", max(5000, 2 * CHAT_MAX_SOCKETS),
                                                       minimum=1)), **{
        # daphne refuses a handshake that finds websocket.connect full (503 "Connection queue at
        # capacity"; 100 refused bursts of 200): connecting clients wait here for the realtime pool.
        # Where connects expire (_CONNECTS_EXPIRE, above) a storm waits here whole. Elsewhere a
        # longer queue than the pool clears in CHAT_CONNECT_TIMEOUT holds handshakes daphne drops
        # while the workers still run their connects (at 1000 and 10,000 a storm never ended, when
        # the timeout was 5 s): 500, and a quick 503 sends the client to its backoff.
        "websocket.connect": env.integer("CONNECT_CAPACITY", max(500, CHAT_MAX_SOCKETS // 2) if _CONNECTS_EXPIRE
                                         else 500, minimum=1),
        # daphne closes a socket (1013) whose frame finds websocket.receive full: size it for a few
        # seconds of the realtime pool stalled (a worker host cut off inside a transaction holds a
        # room's lock until PostgreSQL ends its session, 5 s) at the site's frame rate.
        "websocket.receive": env.integer("RECEIVE_CAPACITY", 1000, minimum=1)}),
}
if CHAT_LAYER == "ipc":
    _backend = "my_project.layers.IPCChannelLayer"
    # Shared memory names are global to the machine: one prefix per deployment (var dir).
    _layer_config["prefix"] = env.string("IPC_PREFIX", CHAT_PATHS.ipc_prefix)
elif CHAT_LAYER == "rabbitmq":
    _backend = "my_project.layers.RabbitmqChannelLayer"
    _layer_config["url"] = env.amqp_url("AMQP_URL")
    # The broker's management API, where the layer reads its queues' depths (`make status`).
    _management_url = env.string("RABBITMQ_API")
    if not _layer_config["url"]:
        if CHAT_ROLE != "all":
            raise ImproperlyConfigured("CHAT_LAYER=rabbitmq on a host of a cluster (CHAT_ROLE=%s): set "
                                       "CHAT_AMQP_URL to the broker's (a broker of the deployment's own runs "
                                       "on one machine only)" % CHAT_ROLE)
        # `manage.py serve` runs a RabbitMQ of its own, on loopback ports of its var dir's.
        CHAT_LAYER_SERVER = "rabbitmq"
        # Printable ASCII but the blank and "#": rabbitmq.conf ends a value at "#" (a comment) and
        # trims its blanks, so the broker would take another password than the layer's URL gives.
        if CHAT_RABBITMQ_PASSWORD and not re.fullmatch(r"[!-\"$-~]+", CHAT_RABBITMQ_PASSWORD):
            raise ImproperlyConfigured("CHAT_RABBITMQ_PASSWORD holds a space, a '#' or a character beyond "
                                       "printable ASCII, which rabbitmq.conf cannot carry: choose another")
        if not CHAT_RABBITMQ_PASSWORD:
            # Every process computes the same one from what it is given (daphne has the environment
            # alone): no file to write first and read back, and nothing guessable from the var dir.
            if not env.string("SECRET_KEY"):
                raise ImproperlyConfigured(
                    "CHAT_LAYER=rabbitmq derives its broker's password from CHAT_SECRET_KEY: set it (`make "
                    "run` generates one in var/secret_key), or set CHAT_RABBITMQ_PASSWORD or CHAT_AMQP_URL")
            CHAT_RABBITMQ_PASSWORD = hmac.new(env.string("SECRET_KEY").encode(), b"rabbitmq password",
                                              hashlib.sha256).hexdigest()
        _ports = CHAT_PATHS.rabbitmq_ports
        _account = "chat:%s@127.0.0.1" % quote(CHAT_RABBITMQ_PASSWORD, safe="")
        _layer_config["url"] = "amqp://%s:%d/chat" % (_account, _ports.amqp)
        _management_url = "http://%s:%d" % (_account, _ports.management)
    if _management_url:
        _layer_config["management_url"] = _management_url
elif env.strings("REDIS_SENTINELS"):
    # Masters found through Sentinel (host:port of each), one per service (several = shards); the
    # masters and the Sentinels both ask for CHAT_REDIS_PASSWORD.
    _backend = "my_project.layers.SentinelChannelLayer"
    _services = env.strings("REDIS_SERVICE", ["chat"])
    _layer_config.update({
        "sentinels": env.strings("REDIS_SENTINELS"),
        "services": _services,
        "password": CHAT_REDIS_PASSWORD or None,
        "sentinel_password": CHAT_REDIS_PASSWORD or None,
    })
else:
    _backend = "my_project.layers.RedisChannelLayer"
    _hosts = env.redis_urls("REDIS_URL")  # several = sharded by channel name
    if not _hosts:
        # `manage.py serve` runs a redis-server of its own, on a loopback port of its var dir's.
        CHAT_LAYER_SERVER = "redis"
        _hosts = ["redis://%s%s:%d/0" % (
            (":%s@" % quote(CHAT_REDIS_PASSWORD, safe="") if CHAT_REDIS_PASSWORD else "",) +
            CHAT_NETWORK.redis_address)]
    _layer_config["hosts"] = _hosts
    _layer_config["connection_kwargs"] = {
        # A password in a URL is %-encoded (redis-py 2.10 would send it as written otherwise).
        "decode_components": True,
        "socket_connect_timeout": 2,  # and socket_timeout, below
    }
if CHAT_LAYER == "redis":  # every Redis layout: one server, shards, or masters behind Sentinels
    _shards = len(_layer_config.get("services") or _layer_config["hosts"])
    _layer_config.update({
        # Seconds a receive blocks on one shard; short when there are several (see
        # layers/redis_layer.py). Fractions need Redis >= 6.
        "blpop_timeout": env.number("REDIS_BLPOP_TIMEOUT", 5 if _shards == 1 else 0.2, minimum=0.01),
        "prefix": env.string("REDIS_PREFIX", "chat:"),
    })
    if _CONNECTS_EXPIRE:
        _layer_config["channel_expiry"] = {"websocket.connect": CHAT_CONNECT_TIMEOUT}
    if "connection_kwargs" in _layer_config:
        # A Redis host cut off (no reset comes) must not hang a worker or a daphne's sends until
        # TCP gives up, minutes later: a call fails after this long, and the chat resends.
        _layer_config["connection_kwargs"]["socket_timeout"] = _layer_config["blpop_timeout"] + 5
if CHAT_LAYER in ("redis", "rabbitmq") and env.strings("LAYER_ENCRYPTION_KEYS"):  # messages on a server
    _layer_config["symmetric_encryption_keys"] = env.strings("LAYER_ENCRYPTION_KEYS")
if CHAT_LAYER_FLAVOR == "upstream":
    if CHAT_LAYER == "rabbitmq":
        raise ImproperlyConfigured("CHAT_LAYER_FLAVOR=upstream has no RabbitMQ layer (asgi_rabbitmq left the "
                                   "package index and does not run on this Python): use the tuned flavor")
    if "Sentinel" in _backend:
        raise ImproperlyConfigured("CHAT_LAYER_FLAVOR=upstream has no Sentinel layer that daphne can "
                                   "read (asgi_redis' receive_twisted fails on it): unset CHAT_REDIS_SENTINELS")
    _backend = _backend.replace("my_project.layers.", "my_project.layers.upstream.")
    for _tuning in ("capacity", "channel_capacity", "blpop_timeout"):
        _layer_config.pop(_tuning, None)
CHANNEL_LAYERS = {"default": {
    "BACKEND": _backend, "CONFIG": _layer_config, "ROUTING": "my_project.routing.channel_routing"}}


# ---- The interface server ------------------------------------------------------------------
# How long daphne waits for a worker's answer to an HTTP request before it answers 503.
CHAT_HTTP_TIMEOUT = env.integer("HTTP_TIMEOUT", 60, minimum=5)
# WebSocket subprotocols daphne selects (the first a client offers that is listed here): the
# versions of chat/protocol.py's frames this site speaks (chat.protocol.VERSION). Channels 1.x's
# runserver reads CHANNELS_WS_PROTOCOLS for the same; daphne's command line has --ws-protocol.
CHAT_WS_PROTOCOLS = env.strings("WS_PROTOCOLS", ["chat.v1"])
# Proxies in front that write the client's address into X-Forwarded-For: nginx in every shape
# `manage.py serve` starts (1), a platform's router before the Procfile's daphne (1). 0: nothing in
# front (`make paas` on this machine): the header is the client's own, and neither daphne nor the
# login throttle (guard/addresses.py) believes it, nor daphne X-Forwarded-Proto and -Port.
CHAT_PROXY_HOPS = env.integer("PROXY_HOPS", 1, minimum=0)

"""How many WebSockets a deployment can hold, from the descriptors each process may open: the one
place render (nginx's workers and connections), preflight (refuse what cannot hold CHAT_MAX_SOCKETS)
and status (say the capacity) take the arithmetic from.

A proxied WebSocket costs nginx two descriptors (the client's connection and the one to daphne) and
daphne one. The hard limit per process cannot be raised without CAP_SYS_RESOURCE (20,000 on these
machines), so more sockets take more processes: nginx workers are computed here, daphne processes
are a setting (CHAT_DAPHNE_PROCS) that is checked. Nothing here imports Django: the numbers come in
as arguments (current() reads them from the settings).
"""
import collections
import math

# Descriptors per process kept for what is not a client's socket: the listening sockets, log files,
# the layer's connections, the upstream keep-alive pool, epoll, a few for a restart's overlap.
HEADROOM = 100
NGINX_PER_SOCKET = 2   # the client's connection and nginx's to daphne
DAPHNE_PER_SOCKET = 1

Capacity = collections.namedtuple("Capacity", [
    "file_limit",           # descriptors each process may hold (ops.environment.file_limit)
    "max_sockets",          # CHAT_MAX_SOCKETS: what the deployment must hold
    "nginx_workers",        # worker_processes
    "worker_connections",   # per nginx worker: client and upstream connections both count
    "daphne_procs",         # CHAT_DAPHNE_PROCS
    "per_daphne",           # sockets one daphne can hold
])


def usable(file_limit):
    """Descriptors of one process left for sockets once the headroom is kept."""
    return max(0, file_limit - HEADROOM)


def sockets_per_worker(file_limit):
    """Proxied WebSockets one nginx worker can hold."""
    return usable(file_limit) // NGINX_PER_SOCKET


def nginx_workers(max_sockets, file_limit):
    """Enough nginx workers that none holds more than sockets_per_worker (at least one)."""
    per_worker = sockets_per_worker(file_limit)
    if per_worker < 1:
        return 1
    return max(1, int(math.ceil(max_sockets / float(per_worker))))


def daphnes_needed(max_sockets, file_limit):
    """daphne processes that together hold max_sockets (at least one)."""
    per_daphne = usable(file_limit) // DAPHNE_PER_SOCKET
    if per_daphne < 1:
        return 1
    return max(1, int(math.ceil(max_sockets / float(per_daphne))))


def plan(max_sockets, file_limit, daphne_procs):
    """The Capacity of a deployment of daphne_procs daphnes whose processes may hold file_limit."""
    return Capacity(
        file_limit=file_limit,
        max_sockets=max_sockets,
        nginx_workers=nginx_workers(max_sockets, file_limit),
        worker_connections=max(1, usable(file_limit)),
        daphne_procs=daphne_procs,
        per_daphne=usable(file_limit) // DAPHNE_PER_SOCKET,
    )


def nginx_sockets(capacity):
    """Proxied WebSockets nginx's workers hold together."""
    return capacity.nginx_workers * (capacity.worker_connections // NGINX_PER_SOCKET)


def daphne_sockets(capacity):
    """WebSockets the daphnes hold together."""
    return capacity.daphne_procs * capacity.per_daphne


def sockets(capacity):
    """WebSockets the deployment holds: the smaller of nginx's and the daphnes'."""
    return min(nginx_sockets(capacity), daphne_sockets(capacity))


def problem(capacity, response_capacity=None):
    """One line saying why the deployment cannot hold capacity.max_sockets, and the fix; None when it
    can. response_capacity: a daphne's reply list (CHAT_RESPONSE_CAPACITY), which one broadcast to
    a room of max_sockets may fill on one daphne (after a restart sends every socket to the other)."""
    if usable(capacity.file_limit) < 1:
        return ("each process may hold %d file descriptors, %d of which are kept for other uses: raise "
                "the hard limit (`ulimit -Hn`, as root) to hold any socket" % (capacity.file_limit, HEADROOM))
    if daphne_sockets(capacity) < capacity.max_sockets:
        needed = daphnes_needed(capacity.max_sockets, capacity.file_limit)
        return ("CHAT_MAX_SOCKETS=%d needs %d daphne processes at %s descriptors each: set DAPHNE_PROCS=%d "
                "or lower MAX_SOCKETS" % (capacity.max_sockets, needed, "{:,}".format(capacity.per_daphne),
                                          needed))
    if response_capacity is not None and response_capacity < capacity.max_sockets:
        return ("CHAT_RESPONSE_CAPACITY=%d is below CHAT_MAX_SOCKETS=%d: a broadcast to a room that size "
                "would drop replies on a daphne holding most of it; set RESPONSE_CAPACITY=%d (or unset "
                "it: the default follows MAX_SOCKETS) or lower MAX_SOCKETS"
                % (response_capacity, capacity.max_sockets, 2 * capacity.max_sockets))
    return None


def describe(capacity):
    """The one line `make status` prints."""
    return ("Socket capacity %s (CHAT_MAX_SOCKETS %s): nginx %d workers x %s connections = %s sockets, "
            "daphne %d processes x %s descriptors = %s sockets; %s descriptors per process" % tuple(
                "{:,}".format(value) if isinstance(value, int) and value >= 1000 else value for value in (
                    sockets(capacity), capacity.max_sockets, capacity.nginx_workers,
                    capacity.worker_connections, nginx_sockets(capacity), capacity.daphne_procs,
                    capacity.per_daphne, daphne_sockets(capacity), capacity.file_limit)))


def current():
    """The Capacity of the deployment the settings describe, on this machine's descriptor limit."""
    from django.conf import settings

    from .environment import file_limit
    return plan(settings.CHAT_MAX_SOCKETS, file_limit(), settings.CHAT_DAPHNE_PROCS)

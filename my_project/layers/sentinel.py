"""The Redis layer on masters that Redis Sentinel names: the same lists and scripts, across a failover."""
import logging
import time

import redis
from redis.sentinel import Sentinel

from .base import LayerUnavailable
from .redis_layer import RedisChannelLayer
from .redis_packing import pack_with_hiredis

logger = logging.getLogger(__name__)

# What a call gets from a master that died, is cut off or was demoted while Sentinel fails over.
# redis-py's Sentinel connections turn a demoted master's READONLY into a ConnectionError already;
# ReadOnlyError is here for a command that reaches one some other way.
FAILOVER_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError)

SENTINEL_TIMEOUT = 1  # seconds a Sentinel may take to answer (a dead one is skipped for the next)
CONNECT_TIMEOUT = 2  # seconds to connect to a master
SOCKET_SLACK = 5  # seconds a master may answer late beyond a blocking pop's own wait


class SentinelChannelLayer(RedisChannelLayer):
    """The project's RedisChannelLayer on the masters of Sentinel services, one shard per service.

    Each shard's redis-py client asks Sentinel for its master's address whenever it connects, and a
    connection that fails (a master killed, cut off or demoted) is dropped: the call raises
    redis.ConnectionError (or TimeoutError), and the next one after Sentinel promoted a replica
    reaches the new master. Sockets time out, so a master cut off without a reset cannot hang a
    process. A blocking receive (channels' worker loop, which an exception ends) waits a failover
    out instead of raising. daphne's reader asks Sentinel for the address too (reader_address).
    asgi_redis' own RedisSentinelChannelLayer fails in receive_twisted (a Sentinel pool has no host).
    """

    RETRY_DELAY = 0.5  # seconds a blocking receive pauses after a failed one (the worker calls again)

    def __init__(self, sentinels, services, password=None, sentinel_password=None, blpop_timeout=None,
                 **kwargs):
        if "hosts" in kwargs:
            raise TypeError("SentinelChannelLayer takes sentinels and services, not hosts")
        self.sentinel_addresses = [_address(entry) for entry in sentinels]
        if not self.sentinel_addresses:
            raise ValueError("SentinelChannelLayer needs at least one Sentinel")
        if isinstance(services, str) or not services or not all(isinstance(s, str) and s for s in services):
            raise ValueError("services must be a list of Sentinel service names, not %r" % (services,))
        self.services = list(services)
        self.password = password or None
        self.sentinel_password = sentinel_password or None
        self._sentinel = self._new_sentinel(SENTINEL_TIMEOUT)
        # Its own for the lookups of daphne's reader, which run in a thread: discover_master reorders
        # a Sentinel object's list of Sentinels as it goes.
        self._reader_sentinel = self._new_sentinel(SENTINEL_TIMEOUT)
        self._outage_since = None  # when blocking receives started failing, for the log
        # Set before the base class' __init__, which builds the clients (and sets blpop_timeout after).
        self.socket_timeout = (self.blpop_timeout if blpop_timeout is None else blpop_timeout) + SOCKET_SLACK
        self.reader_reply_timeout = self.socket_timeout
        # asgi_redis takes the shards' names in `hosts` (and the ring's size from them): the services.
        super(SentinelChannelLayer, self).__init__(hosts=self.services, blpop_timeout=blpop_timeout, **kwargs)

    def _new_sentinel(self, timeout):
        return Sentinel(self.sentinel_addresses, sentinel_kwargs={
            "password": self.sentinel_password, "socket_timeout": timeout, "socket_connect_timeout": timeout})

    def _generate_connections(self, hosts, redis_kwargs):
        """A client per service (asgi_redis' `hosts`), connecting to its current master."""
        kwargs = dict(redis_kwargs)
        kwargs.pop("decode_components", None)  # the settings' option for Redis URLs: there are none here
        kwargs.setdefault("socket_timeout", self.socket_timeout)
        kwargs.setdefault("socket_connect_timeout", CONNECT_TIMEOUT)
        return pack_with_hiredis([
            self._sentinel.master_for(service, redis_class=redis.StrictRedis, password=self.password, **kwargs)
            for service in hosts])

    # ---- across a failover ----------------------------------------------------------------------

    def receive(self, channels, block=False):
        """As RedisChannelLayer's; a blocking one that finds no master logs a warning (once per
        outage), pauses RETRY_DELAY and returns (None, None), so that the worker's loop, which ends
        on any exception, calls again. A non-blocking one raises, as a send does."""
        if not block:
            return super(SentinelChannelLayer, self).receive(channels, block=False)
        try:
            found = super(SentinelChannelLayer, self).receive(channels, block=True)
        except FAILOVER_ERRORS as exc:
            self._receive_failed(exc)
            time.sleep(self.RETRY_DELAY)
            return None, None
        if self._outage_since is not None:
            logger.info("Redis masters of %s answer again, %.1f s after the first failed receive",
                        ", ".join(self.services), time.time() - self._outage_since)
            self._outage_since = None
        return found

    def _receive_failed(self, exc):
        if self._outage_since is None:
            self._outage_since = time.time()
            logger.warning("No Redis master of %s answers (%s: %s): retrying every %.1f s while "
                           "Sentinel fails over", ", ".join(self.services), type(exc).__name__, exc,
                           self.RETRY_DELAY)
        else:
            logger.debug("Still no Redis master of %s: %s", ", ".join(self.services), exc)

    def reader_address(self, index):
        """A Deferred firing with (host, port, db, password) of the current master of shard `index`,
        as Sentinel names it (asked in a thread: redis-py's client blocks)."""
        from twisted.internet import threads
        found = threads.deferToThread(self._reader_sentinel.discover_master, self.services[index])
        return found.addCallback(lambda address: (address[0], address[1], 0, self.password))

    # ---- the project's questions ------------------------------------------------------------------

    def check(self):
        """LayerUnavailable when no Sentinel answers, they know no usable master for a service, or a
        master does not answer."""
        sentinel = self._new_sentinel(self.CHECK_TIMEOUT)
        try:
            masters = self._sentinel_masters(sentinel)
            for service in self.services:
                self._check_master(sentinel, masters, service)
        finally:
            for client in sentinel.sentinels:
                client.connection_pool.disconnect()

    def _sentinel_masters(self, sentinel):
        """{service: state} of the first Sentinel that answers; LayerUnavailable when none does."""
        errors = []
        for (host, port), client in zip(self.sentinel_addresses, sentinel.sentinels):
            try:
                return client.sentinel_masters()
            except redis.RedisError as exc:
                errors.append("%s:%s: %s" % (host, port, exc))
        where = ", ".join("%s:%s" % address for address in self.sentinel_addresses)
        raise LayerUnavailable("cannot reach any Sentinel at %s (%s): start them, or fix CHAT_REDIS_SENTINELS or "
                               "the Sentinels' password" % (where, "; ".join(errors)))

    def _check_master(self, sentinel, masters, service):
        try:
            host, port = sentinel.discover_master(service)
        except redis.RedisError:
            raise LayerUnavailable("Sentinel knows no master for service %s: %s; fix CHAT_REDIS_SERVICE or the "
                                   "Sentinels' configuration" % (service, _why_no_master(masters, service)))
        probe = redis.StrictRedis(host, port, password=self.password, socket_timeout=self.CHECK_TIMEOUT,
                                  socket_connect_timeout=self.CHECK_TIMEOUT)
        try:
            probe.ping()
        except redis.RedisError as exc:
            raise LayerUnavailable("cannot reach the master of service %s at %s:%s (%s): start it, or check "
                                   "the masters' password" % (service, host, port, exc))
        finally:
            probe.connection_pool.disconnect()

    def __str__(self):
        return "%s(sentinels=%s, services=%s)" % (
            type(self).__name__, ["%s:%s" % address for address in self.sentinel_addresses], self.services)


def _address(entry):
    """(host, port) of a Sentinel given as "host:port" (or "[v6 address]:port") or as a pair."""
    if isinstance(entry, str):
        host, _, port = entry.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError("a Sentinel is given as host:port, not %r" % entry)
        return host.strip("[]"), int(port)
    host, port = entry
    return host, int(port)


def _why_no_master(masters, service):
    state = masters.get(service)
    if state is None:
        return "the Sentinels monitor %s" % (", ".join(sorted(masters)) or "no service")
    return "its master %s:%s is flagged %s" % (state["ip"], state["port"], state["flags"])

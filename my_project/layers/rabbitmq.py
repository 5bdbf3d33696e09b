"""The RabbitMQ channel layer: ASGI v1 on pika 1.3, a queue per channel, group members in a stream."""
import base64
import hashlib
import json
import logging
import os
import random
import string
import threading
import time
import urllib.parse
import urllib.request

import pika
import pika.exceptions
from asgiref.base_layer import BaseChannelLayer

from . import codec
from .backoff import Backoff
from .base import LayerUnavailable, ProjectLayer, send_each
from .rabbitmq_groups import Members
from .rabbitmq_reader import TwistedReader

logger = logging.getLogger(__name__)

# What a lost or refused connection raises in pika 1.3 (a blocked one included: the broker's memory
# or disk alarm holds every publish until blocked_connection_timeout).
CONNECTION_ERRORS = (pika.exceptions.AMQPConnectionError, pika.exceptions.ConnectionClosed,
                     pika.exceptions.StreamLostError, ConnectionError, OSError)


class RabbitmqChannelLayer(ProjectLayer, BaseChannelLayer):
    """ASGI v1 channels as RabbitMQ queues, on a maintained AMQP client (pika 1.3: CPython 3.7 and a
    Twisted adapter; the guide's asgi_rabbitmq is gone from the index and needs a pika that does
    not import on 3.7).

    Each channel is a queue named prefix + channel (a process-local channel's is its part up to the
    "!", as in the other layers; the full name travels in the message). A queue is declared by
    whoever first sends to it or reads it, with its capacity as `x-max-length` and
    `x-overflow: reject-publish`, so that with publisher confirms a send to a full channel is
    nacked and raises ChannelFull (never a silent drop); the layer's expiry as `x-message-ttl`; and
    `x-expires`, so that the queue of a process gone for good (a daphne's replies) goes away by
    itself. Sends are `mandatory`: one to a queue that expired in between comes back unroutable, and
    the queue is declared again.

    A blocking receive consumes its channels' queues with a prefetch of one over the whole AMQP
    channel, and acknowledges a message at the next receive (the worker is done with it by then):
    the broker gives each message to a worker that is free, never to one busy with a slow
    consumer, and a message whose worker was killed goes back to the queue. A receive that must not
    block asks each queue once (basic.get). Groups: rabbitmq_groups.py. daphne reads with a
    TwistedReader (rabbitmq_reader.py) on one persistent connection.

    Each thread (and each forked process) has its own connection. One that fails is dropped; the
    next operation connects again, at most every RETRY_MIN seconds (doubling to RETRY_MAX while the
    broker stays away): a send in between raises LayerUnavailable at once, saying so, and a receive
    returns nothing (a blocking one after waiting the delay out), so a worker's loop goes on.
    """

    extensions = ["groups", "flush", "statistics", "twisted", "send_batch", "cross_python", "redelivery"]
    # Seconds between connection attempts while the broker is away: doubling, so that a long outage
    # is not hammered, up to a cap a restart (about 10 s of a broker stopping and booting) outlasts
    # by little.
    RETRY_MIN, RETRY_MAX = 0.25, 2.0
    PREFETCH_REPLIES = 200  # messages daphne's reader may hold unacknowledged

    def __init__(self, url="amqp://guest:guest@127.0.0.1:5672/%2F", prefix="asgi:", expiry=60,
                 group_expiry=86400, capacity=100, channel_capacity=None, symmetric_encryption_keys=None,
                 receive_timeout=5, management_url=None, connect_timeout=2, queue_expiry=None, heartbeat=30):
        super(RabbitmqChannelLayer, self).__init__(
            expiry=expiry, group_expiry=group_expiry, capacity=capacity, channel_capacity=channel_capacity)
        self.url = url
        self.parameters = pika.URLParameters(url)
        self.parameters.socket_timeout = connect_timeout
        self.parameters.stack_timeout = connect_timeout * 2
        self.parameters.blocked_connection_timeout = 10
        self.parameters.heartbeat = heartbeat  # seconds: a broker gone without a word is noticed in two
        self.prefix = prefix
        self.receive_timeout = receive_timeout
        self.management_url = management_url
        self.members_queue = prefix + Members.QUEUE  # the stream of group changes (rabbitmq_groups.py)
        # A queue nobody reads for this long is deleted with what it holds (long expired by then).
        self.queue_expiry = queue_expiry or max(10 * expiry, 600)
        self.crypter = _crypter(symmetric_encryption_keys)
        self._local = threading.local()
        self._retry = Backoff(self.RETRY_MIN, self.RETRY_MAX)
        self._counts = {"messages_count": 0, "channel_full_count": 0}
        self._warned = set()
        self._reader = TwistedReader(self)

    # ---- names and queues -------------------------------------------------------------------------

    def where(self):
        """host:port of the broker, for messages."""
        return "%s:%s" % (self.parameters.host, self.parameters.port)

    def queue(self, channel):
        """The queue holding a channel's messages."""
        return self.prefix + self.non_local_name(channel)

    def channel_of(self, queue):
        return queue[len(self.prefix):]

    def queue_arguments(self, queue):
        """The arguments every process declares `queue` with (they must all agree)."""
        return {"x-max-length": self.get_capacity(self.channel_of(queue)), "x-overflow": "reject-publish",
                "x-message-ttl": int(self.expiry * 1000), "x-expires": int(self.queue_expiry * 1000)}

    def pack(self, names, message):
        """A message's AMQP body: the channel names it is for (full process-local names; none: the
        queue's own channel) and the message, encrypted when keys are set."""
        payload = codec.pack(message)
        if self.crypter:
            payload = self.crypter.encrypt(payload)
        return codec.pack([names, payload])

    def unpack(self, queue, body):
        """[(channel, message)] from an AMQP body; [] when it cannot be read."""
        try:
            names, payload = codec.unpack(body)
            if self.crypter:
                payload = self.crypter.decrypt(payload, self.expiry + 10)
            message = codec.unpack(payload)
        except Exception as exc:  # another layer's format on the same queue, or a wrong key
            logger.warning("Dropped an unreadable message on %s: %s", queue, exc)
            return []
        return [(name, message) for name in (names or [self.channel_of(queue)])]

    # ---- connections ------------------------------------------------------------------------------

    def _link(self):
        """This thread's Link, connected; LayerUnavailable while the broker is away."""
        link = getattr(self._local, "link", None)
        if link is not None and link.pid != os.getpid():
            link = None  # a forked child must not use its parent's socket
        if link is not None and link.usable() and link.alive():
            return link
        if link is not None:
            link.close()
        self._local.link = None
        wait = self._retry.wait()
        if wait > 0:
            raise LayerUnavailable("RabbitMQ at %s is unreachable (%s); the next attempt is in %.1f s"
                                   % (self.where(), self._retry.last_error, wait))
        try:
            link = Link(self)
        except CONNECTION_ERRORS as exc:
            self._failed(exc)
            raise LayerUnavailable("cannot connect to RabbitMQ at %s (%s): start it, or fix the layer's "
                                   "URL (CHAT_AMQP_URL)" % (self.where(), describe(exc)))
        away = self._retry.succeeded()
        if away:
            logger.info("RabbitMQ at %s answers again after %.1f s", self.where(), away)
        self._local.link = link
        return link

    def _failed(self, exc):
        """Count a failed connection for the backoff; the first of an outage is logged."""
        self._retry.failed(describe(exc))
        if self._retry.failures == 1:
            logger.warning("Lost RabbitMQ at %s (%s): connecting again with backoff", self.where(), describe(exc))

    def _lost(self, link, exc):
        """Drop a link whose connection failed; LayerUnavailable to raise."""
        self._failed(exc)
        link.close()
        if getattr(self._local, "link", None) is link:
            self._local.link = None
        return LayerUnavailable("lost RabbitMQ at %s (%s)" % (self.where(), describe(exc)))

    def close(self):
        """Acknowledge what this thread was handed and close its connection: a worker stopped by
        SIGTERM has finished its last message, which must not be delivered again (runworker calls
        this as it stops)."""
        link = getattr(self._local, "link", None)
        self._local.link = None
        if link is not None and link.pid == os.getpid():
            link.close(acknowledge=True)

    # ---- ASGI API ---------------------------------------------------------------------------------

    def send(self, channel, message):
        self.assert_sendable(channel, message)
        names = [channel] if "!" in channel else []
        if not self._publish(self.queue(channel), self.pack(names, message)):
            raise self.ChannelFull()

    def _publish(self, queue, body):
        """Publish with confirms; False when the queue is full (nacked)."""
        link = self._link()
        try:
            accepted = link.publish(queue, body)
        except CONNECTION_ERRORS as exc:
            raise self._lost(link, exc)
        self._counts["messages_count" if accepted else "channel_full_count"] += 1
        return accepted

    def send_batch(self, sends):
        return send_each(self, sends)  # each send is one confirmed publish: no round trip to save

    def receive(self, channels, block=False):
        assert all(self.valid_channel_name(c, receive=True) for c in channels), \
            "One or more channel names invalid"
        if not channels:
            return None, None
        queues = sorted({self.queue(channel) for channel in channels})
        # A broker away is reported as a quiet layer: the loops that receive (runworker, channels'
        # delay server, which polls) go on until it is back, instead of exiting at start-up while
        # the broker boots (a few seconds) or whenever it restarts. The loss is logged once.
        try:
            link = self._link()
        except LayerUnavailable:
            if block:  # wait the delay out rather than spin
                time.sleep(min(self._retry.wait(), self.receive_timeout))
            return None, None
        try:
            found = link.receive(queues, self.receive_timeout if block else 0)
        except CONNECTION_ERRORS as exc:
            self._lost(link, exc)
            return None, None
        return found or (None, None)

    def new_channel(self, pattern):
        assert isinstance(pattern, str) and pattern.endswith("?"), "new_channel pattern must end with ?"
        assert self.valid_channel_name(pattern[:-1]), "new_channel pattern is not a valid channel name"
        return pattern + "".join(random.choice(string.ascii_letters) for _ in range(12))

    def receive_twisted(self, channels):
        return self._reader.receive(channels)

    # ---- groups -----------------------------------------------------------------------------------

    def group_add(self, group, channel):
        self._members_change("add", group, channel)

    def group_discard(self, group, channel):
        self._members_change("discard", group, channel)

    def _members_change(self, change, group, channel):
        assert self.valid_group_name(group), "Group name not valid"
        assert self.valid_channel_name(channel), "Channel name not valid"
        link = self._link()
        try:
            link.members().change(change, group, channel)
        except CONNECTION_ERRORS as exc:
            raise self._lost(link, exc)

    def group_channels(self, group):
        link = self._link()
        try:
            return link.members().of(group)
        except CONNECTION_ERRORS as exc:
            raise self._lost(link, exc)

    def send_group(self, group, message):
        """One publish per queue: the members on one daphne's reply queue share one message that
        names them all (a broadcast to a thousand sockets on two daphnes is two publishes). A full
        queue drops it (the groups extension allows that)."""
        assert self.valid_group_name(group), "Group name not valid"
        by_queue = {}
        for channel in self.group_channels(group):
            by_queue.setdefault(self.queue(channel), []).append(channel)
        for queue, members in by_queue.items():  # a plain channel's queue needs no names
            self._publish(queue, self.pack([member for member in members if "!" in member], message))

    # ---- flush, statistics, depths ----------------------------------------------------------------

    def flush(self):
        """Delete every queue of the layer (all of them when the management API is known, else
        those this process used) and the group members."""
        link = self._link()
        queues = set(link.declared)
        if self.management_url:
            queues.update(self._management_queues())
        try:
            link.delete(queues | {self.members_queue})
        except CONNECTION_ERRORS as exc:
            raise self._lost(link, exc)

    def global_statistics(self):
        """This process' counts since it started (the broker keeps none per sender)."""
        return dict(self._counts)

    def channel_statistics(self, channel):
        link = self._link()
        return {"messages_count": 0, "channel_full_count": 0, "messages_max_age": 0,
                "messages_pending": link.depth(self.queue(channel))}

    def check(self):
        try:
            self._link()
        except LayerUnavailable as exc:
            self._retry.succeeded()  # the caller gives up; a later one may try at once
            raise exc

    def depths(self):
        if not self.management_url:
            raise LayerUnavailable("the queues of an external broker are listed by its management API: "
                                   "set CHAT_RABBITMQ_API to http://user:password@host:15672")
        found = {}
        for queue, messages in self._management_queues().items():
            if messages:
                found[self.channel_of(queue)] = messages
        return found

    def _management_queues(self):
        """{queue: messages waiting} for the layer's queues, from the management HTTP API."""
        parts = urllib.parse.urlsplit(self.management_url)
        vhost = urllib.parse.quote(self.parameters.virtual_host, safe="")
        url = "%s://%s:%s/api/queues/%s?columns=name,messages" % (
            parts.scheme, parts.hostname, parts.port, vhost)
        credentials = "%s:%s" % (urllib.parse.unquote(parts.username or ""),
                                 urllib.parse.unquote(parts.password or ""))
        request = urllib.request.Request(url, headers={
            "Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()})
        with urllib.request.urlopen(request, timeout=5) as answer:
            queues = json.loads(answer.read().decode())
        return {q["name"]: q.get("messages") or 0 for q in queues
                if q["name"].startswith(self.prefix) and q["name"] != self.members_queue}

    def arguments_differ(self, queue):
        """Say once that `queue` was declared elsewhere with other arguments (another release sized
        it differently: a capacity changed); the caller uses it as it is rather than fail every
        send until it expires."""
        if queue not in self._warned:
            self._warned.add(queue)
            logger.warning("Queue %s exists with other arguments than %s: using it as it is",
                           queue, self.queue_arguments(queue))


class Link(object):
    """One thread's connection to the broker: an AMQP channel in confirm mode for sends and
    receives, the queues it has declared, its consumers and the message it was last handed."""

    def __init__(self, layer):
        self.layer = layer
        self.pid = os.getpid()
        self.used = time.monotonic()
        self.connection = pika.BlockingConnection(layer.parameters)
        self.declared = set()
        self._members = None
        self._open_channel()

    def _open_channel(self):
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()
        # At most one message handed to this process and not yet acknowledged, over every queue
        # it consumes (global): the next goes to a worker that is free.
        self.channel.basic_qos(prefetch_count=1, global_qos=True)
        self.consuming = ()  # the queues consumed, in a blocking receive
        self.deliveries = []  # (delivery tag, queue, body) pushed by the broker, not yet handed out
        self.handed = []  # (channel, message) of a message naming several, still to hand out
        self.unacked = None  # the delivery tag handed out last

    def usable(self):
        return self.connection.is_open and self.channel.is_open

    def alive(self):
        """Whether the connection still works, looked at after a quiet spell: pika's blocking
        connection sends heartbeats and reads the broker's frames only while it is used, so one left
        idle (daphne's sends, on a quiet site) is closed by the broker after two missed heartbeats,
        and the next send would fail on it. Taking in what arrived keeps it alive or shows it gone
        (then the caller connects again at once, without an error)."""
        now = time.monotonic()
        quiet, self.used = now - self.used, now
        if quiet < self.layer.parameters.heartbeat / 2.0:
            return True
        try:
            self.connection.process_data_events(time_limit=0)
        except CONNECTION_ERRORS as exc:
            logger.info("A RabbitMQ connection idle for %.0f s was gone (%s): connecting again", quiet,
                        describe(exc))
            return False
        return self.usable()

    def _on_channel_closed(self, exc):
        """The broker closed the channel (a queue deleted under us, a declare that disagreed): the
        consumers and the unacknowledged message went with it (the broker queues it again)."""
        logger.debug("RabbitMQ closed the channel: %s", exc)
        self._open_channel()
        self.declared.clear()

    def declare(self, queue):
        if queue in self.declared:
            return
        try:
            self.channel.queue_declare(queue, arguments=self.layer.queue_arguments(queue))
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 406:  # PRECONDITION_FAILED: it exists with other arguments
                raise
            self._on_channel_closed(exc)
            self.layer.arguments_differ(queue)
            self.channel.queue_declare(queue, passive=True)
        self.declared.add(queue)

    def publish(self, queue, body):
        """True when the broker took it, False when the queue is full."""
        for _ in range(3):
            self.declare(queue)
            try:
                self.channel.basic_publish("", queue, body, mandatory=True)
                return True
            except pika.exceptions.NackError:
                return False
            except pika.exceptions.UnroutableError:
                self.declared.discard(queue)  # it expired or was flushed since: declare it again
        raise pika.exceptions.AMQPChannelError("%s kept disappearing while sending" % queue)

    def receive(self, queues, timeout):
        """(channel, message) from one of `queues`, or None after timeout."""
        self.acknowledge()
        found = self._handed(queues)
        if found:
            return found
        if not timeout:
            if self.consuming:
                self.connection.process_data_events(time_limit=0)
                found = self._delivered(queues)
                if found:
                    return found
            return self._get(queues)
        deadline = time.time() + timeout
        # Consumers, kept from one receive to the next (a worker asks for the same channels each
        # time): the broker pushes what waits at once, so there is nothing to ask for first.
        self._consume(queues)
        while True:
            found = self._delivered(queues)
            if found:
                return found
            remaining = deadline - time.time()
            if remaining <= 0:
                return None
            self.connection.process_data_events(time_limit=remaining)

    def _handed(self, queues):
        """The next (channel, message) of a delivery that named several channels of `queues`."""
        for index, (queue, found) in enumerate(self.handed):
            if queue in queues:
                del self.handed[index]
                return found
        return None

    def _take(self, tag, queue, body):
        """The first (channel, message) of a delivery; the others it names kept for the next receives."""
        self.unacked = tag
        self.handed[:0] = [(queue, item) for item in self.layer.unpack(queue, body)]
        return self._handed([queue])

    def _get(self, queues):
        for queue in random.sample(queues, len(queues)):
            self.declare(queue)
            try:
                method, _, body = self.channel.basic_get(queue, auto_ack=False)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != 404:  # NOT_FOUND: it expired or was flushed since we declared it
                    raise
                self._on_channel_closed(exc)
                continue
            if method is not None:
                found = self._take(method.delivery_tag, queue, body)
                if found:
                    return found
                self.acknowledge()  # unreadable
        return None

    def _consume(self, queues):
        if tuple(queues) == self.consuming:
            return
        self._stop_consuming()
        for queue in queues:
            self.declare(queue)
            self.channel.basic_consume(queue, self._on_delivery)
        self.consuming = tuple(queues)

    def _stop_consuming(self):
        # pika nacks (requeues) what was pushed to a cancelled consumer and not dispatched yet; what
        # was dispatched to self.deliveries goes back the same way.
        for tag in list(self.channel.consumer_tags):
            self.channel.basic_cancel(tag)
        for tag, _, _ in self.deliveries:
            self.channel.basic_nack(tag, requeue=True)
        self.deliveries, self.consuming = [], ()

    def _on_delivery(self, channel, method, properties, body):
        self.deliveries.append((method.delivery_tag, method.routing_key, body))

    def _delivered(self, queues):
        """The first pushed delivery of one of `queues` (a consumer may ask for other channels in
        between, e.g. channels' ordering wait channel: what its consumers were pushed waits)."""
        for index, (tag, queue, body) in enumerate(self.deliveries):
            if queue in queues:
                del self.deliveries[index]
                found = self._take(tag, queue, body)
                if found:
                    return found
                self.acknowledge()  # unreadable
                return self._delivered(queues)
        return None

    def acknowledge(self):
        """Acknowledge the message handed out last once every channel it named was handed out."""
        if self.unacked is not None and not self.handed:
            self.channel.basic_ack(self.unacked)
            self.unacked = None

    def members(self):
        """The group members as this connection knows them (rabbitmq_groups.Members)."""
        if self._members is None or self._members.stale:
            self._members = Members(self.layer, self.connection)
        return self._members

    def delete(self, queues):
        self._stop_consuming()
        self.unacked, self.handed = None, []
        for queue in queues:
            try:
                self.channel.queue_delete(queue)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != 404:  # NOT_FOUND: gone already, or a stream not back yet after a restart
                    raise
                self._on_channel_closed(exc)
        self.declared.clear()
        if self._members is not None:
            self._members.forget()
            self._members = None

    def depth(self, queue):
        self.declare(queue)
        return self.channel.queue_declare(queue, passive=True).method.message_count

    def close(self, acknowledge=False):
        try:
            if acknowledge and self.usable():
                self.handed = []
                self.acknowledge()
            if self.connection.is_open:
                self.connection.close()
        except Exception as exc:  # half gone already
            logger.debug("Closing a RabbitMQ connection: %s", exc)


def describe(exc):
    return "%s: %s" % (type(exc).__name__, exc) if str(exc) else type(exc).__name__


def _crypter(keys):
    """A MultiFernet of the keys (each hashed to a Fernet key, as asgi_redis does), or None."""
    if not keys:
        return None
    from cryptography.fernet import Fernet, MultiFernet
    return MultiFernet([Fernet(base64.urlsafe_b64encode(hashlib.sha256(key.encode("utf8")).digest()))
                        for key in keys])

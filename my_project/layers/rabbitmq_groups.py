"""Group members for the RabbitMQ layer: a log of joins and leaves in a stream, replayed by each
connection into the members it knows."""
import logging
import time
import uuid

import pika

from . import codec

logger = logging.getLogger(__name__)


class Members(object):
    """The groups' members as one connection knows them, from the layer's stream of changes.

    AMQP 0-9-1 cannot list a queue's bindings, nor can a binding carry a process-local channel (one
    queue holds the replies of all of a daphne's sockets, and a queue gets one copy of a message
    however many bindings route it there), so membership cannot live in exchanges and bindings:
    every group_add and group_discard is appended to one stream (a RabbitMQ 3.9+ stream queue,
    kept for the group expiry), and each connection reads the stream from its start on a channel
    of its own and keeps the members in memory. A change is applied here at once (read your own
    writes); other processes hear of it when the broker pushes it, well under a millisecond after
    its confirm, and before sending to a group (or listing it) the connection takes in what has
    arrived. A member older than the group expiry is left out (its add time travels in the change).
    When the stream is deleted (a flush), the broker cancels every reader: each starts over.
    """

    QUEUE = "groups"  # after the layer's prefix (layer.members_queue)
    PREFETCH = 1000
    SYNC_TIMEOUT = 10  # seconds to read the stream up to now when starting

    def __init__(self, layer, connection):
        self.layer = layer
        self.connection = connection
        self.queue = layer.members_queue
        self.groups = {}  # group -> {channel: added at}
        self.stale = False
        self.marker = None  # the sync marker being waited for
        self.origin = uuid.uuid4().hex[:12]  # marks the changes appended here, applied already
        self.channel = connection.channel()
        self.channel.confirm_delivery()
        self.channel.queue_declare(self.queue, durable=True, arguments={
            "x-queue-type": "stream",
            "x-max-age": "%ds" % (layer.group_expiry + 60),
            # Retention drops whole segments: small ones, so that a replay reads little beyond the
            # expiry (the default is 500 MB).
            "x-stream-max-segment-size-bytes": 1000000})
        self.channel.basic_qos(prefetch_count=self.PREFETCH)
        self.channel.add_on_cancel_callback(self._cancelled)
        self.channel.basic_consume(self.queue, self._on_change, arguments={"x-stream-offset": "first"})
        self._sync()

    def _sync(self):
        """Read the stream up to now: append a marker and read until it comes back."""
        self.marker = uuid.uuid4().hex
        self._append(["sync", self.marker, "", 0, self.origin])
        deadline = time.time() + self.SYNC_TIMEOUT
        while self.marker is not None:
            if time.time() > deadline:
                raise pika.exceptions.AMQPChannelError("the group stream %s did not answer within %d s"
                                                       % (self.queue, self.SYNC_TIMEOUT))
            self.connection.process_data_events(time_limit=0.5)

    def _append(self, change):
        self.channel.basic_publish("", self.queue, codec.pack(change))

    def _on_change(self, channel, method, properties, body):
        channel.basic_ack(method.delivery_tag)
        try:
            kind, group, member, added, origin = codec.unpack(body)
        except Exception as exc:
            logger.warning("Dropped an unreadable change of group members: %s", exc)
            return
        self._apply(kind, group, member, added, origin == self.origin)

    def _apply(self, kind, group, member, added, ours):
        if ours and kind != "sync":
            return  # applied when it was made: applied again it could undo a later change of ours
        if kind == "sync":
            if group == self.marker:
                self.marker = None
        elif kind == "add":
            self.groups.setdefault(group, {})[member] = added
        elif kind == "discard":
            self.groups.get(group, {}).pop(member, None)

    def _cancelled(self, method):
        logger.info("The group stream %s went away (flushed): reading it again", self.queue)
        self.stale = True

    def change(self, kind, group, member):
        """Append an "add" or "discard" and apply it here."""
        added = time.time()
        self._append([kind, group, member, added, self.origin])
        self._apply(kind, group, member, added, ours=False)

    def of(self, group):
        """The group's members, after taking in the changes that arrived."""
        self.connection.process_data_events(time_limit=0)
        members = self.groups.get(group, {})
        oldest = time.time() - self.layer.group_expiry
        for member in [m for m, added in members.items() if added < oldest]:
            del members[member]
        return list(members)

    def forget(self):
        self.stale = True
        try:
            if self.channel.is_open:
                self.channel.close()
        except Exception as exc:  # the stream was deleted under it
            logger.debug("Closing the group stream's channel: %s", exc)

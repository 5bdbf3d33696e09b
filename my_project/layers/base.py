"""What the project asks of a channel layer beyond ASGI v1: batched sends and receives, depths, clean-up, a check."""

# The kinds of send in a batch: [(kind, name, message)].
CHANNEL = "channel"  # a send to one channel; the names of full ones are returned
GROUP = "group"  # a group send: members whose channel is full drop it (as send_group does)
GROUP_ONCE = "group_once"  # a group send after which the group is empty (a long poll's release)
KINDS = (CHANNEL, GROUP, GROUP_ONCE)


class LayerUnavailable(Exception):
    """The layer cannot be used (its server does not answer); the message says what to do."""


def send_batch(layer, sends):
    """Send [(kind, name, message)] in order through any ASGI layer; the names of the channel sends
    that were full. A layer with the "send_batch" extension does it at once (one round trip for
    the project's); any other (channels.test's in-memory one) gets one call per send."""
    if "send_batch" in layer.extensions:
        return layer.send_batch(sends)
    return send_each(layer, sends)


def send_each(layer, sends):
    """send_batch one send at a time, with the ASGI API alone."""
    full = []
    for kind, name, message in sends:
        if kind == CHANNEL:
            try:
                layer.send(name, message)
            except layer.ChannelFull:
                full.append(name)
        elif kind == GROUP:
            layer.send_group(name, message)
        else:
            assert kind == GROUP_ONCE, "unknown kind of send %r" % kind
            _send_once(layer, name, message)
    return full


def receive_batch(layer, channel, limit):
    """Up to `limit` messages of one channel, without waiting, through any ASGI layer. A layer with
    the "receive_batch" extension takes them at once (one round trip or store pass); any other gets
    one non-blocking receive each."""
    if "receive_batch" in layer.extensions:
        return layer.receive_batch(channel, limit)
    out = []
    while len(out) < limit:
        found, message = layer.receive_many([channel], block=False)
        if found is None:
            break
        out.append(message)
    return out


def _send_once(layer, group, message):
    # group_channels is not in the ASGI spec (asgi_ipc, asgi_redis and the in-memory layer have it):
    # without it the group stays behind until group_expiry.
    listing = getattr(layer, "group_channels", None)
    if listing is None:
        layer.send_group(group, message)
        return
    for member in list(listing(group)):
        try:
            layer.send(member, message)
        except layer.ChannelFull:
            pass  # as a group send: a full member drops it
        layer.group_discard(group, member)


class ProjectLayer(object):
    """The project's questions to a layer: a mixin of every layer class the settings may name.

    Callers ask the layer instead of testing its type: `manage.py serve` checks it can be reached
    and clears what a stopped deployment left of it, `manage.py status` shows its depths. What a
    layer can do beyond ASGI v1 it names in `extensions`, as ASGI's own extensions are named:
    "send_batch" (a send_batch(sends) method: the sends above, in order, at once; the names of
    the full channel sends returned), "values" (a values(namespace) method: a store of
    expiring strings next to the layer, for channel sessions), "cross_python" (its messages are
    read and written alike by msgpack 0.5 and 1.x: codec.py; an interface server on another Python
    than the workers' may use it), "receive_batch" (a receive_batch(channel, limit) method: up to
    limit messages of one channel in one pass, without waiting), "redelivery" (a message whose
    worker died before taking the next one is given to another worker by the layer itself: no
    reclaim listener needed) and "machine_local" (the layer lives in this machine's memory, so may
    the channel sessions; its old_code_workers() says whether workers of the release before its
    current store format are still around, during a rollout).
    """

    # What the layer raises while its server is away (a restart, an outage): a loop that sends
    # (channels' delay server) waits such an error out instead of exiting.
    OUTAGES = (LayerUnavailable,)

    def check(self):
        """Raise LayerUnavailable, saying what to do, when the layer cannot be used."""

    def remove_storage(self):
        """Remove what the layer keeps on this machine outside a server of its own (its shared
        memory), once no process of the deployment runs."""

    def close(self):
        """Let go of what this process holds on the layer's server (called when a worker stops)."""

    def depths(self):
        """{channel: messages waiting} for every non-empty channel."""
        raise NotImplementedError("%s cannot list its channels" % type(self).__name__)

    def assert_sendable(self, channel, message):
        """The ASGI send's checks, as upstream layers make them."""
        assert isinstance(message, dict), "message is not a dict"
        assert self.valid_channel_name(channel), "Channel name not valid"
        assert "__asgi_channel__" not in message

    def assert_group(self, kind, group):
        assert kind in KINDS, "unknown kind of send %r" % kind
        assert self.valid_group_name(group), "Group name not valid"

"""What a stored message sends (to the room, its long polls, its sender, the background pool), in
one go."""
import logging

from channels import DEFAULT_CHANNEL_LAYER, channel_layers

from . import poll, protocol

logger = logging.getLogger(__name__)

MODERATION_CHANNEL = "background.moderate"


def message_sends(room, stored, created, ack_to=None):
    """The sends for a stored message, in order: the room's sockets, then its sender's ack, then
    the long polls waiting for it, then (a new message only) spam scoring."""
    frame = stored.as_frame()
    sends = [("group", room.group, protocol.encode(frame))]
    if ack_to is not None:
        sends.append(("channel", ack_to, protocol.encode(
            {"type": "ack", "client_id": stored.client_id, "id": stored.seq})))
    # A poll joining after this send finds the message stored (it reads the room's last id after
    # joining the group) and answers itself.
    sends.append(("group_once", room.poll_group(stored.seq - 1), poll.response(200, [frame])))
    if created:
        sends.append(("channel", MODERATION_CHANNEL, {"message_id": stored.pk, "text": stored.text}))
    return sends


def deliver(room, stored, created, ack_to=None):
    """Send a stored message everywhere it goes; a full queue loses only its own send: a full ack
    is resent by the client (who gets the same ack), a full moderation queue leaves the message
    unscored rather than stall the realtime worker."""
    full = send_all(message_sends(room, stored, created, ack_to))
    if ack_to in full:
        logger.warning("No room for the ack of message %d on %s", stored.pk, ack_to)
    if MODERATION_CHANNEL in full:
        logger.warning("%s is full: message %d goes unscored", MODERATION_CHANNEL, stored.pk)


def send_all(sends, layer=None):
    """[(kind, name, message)] sent in order (kinds: "channel", "group", "group_once": a group
    emptied once sent to); the full channels' names. The project's layers do it in one round
    trip (send_batch); any other ASGI layer (channels.test's in-memory one) gets one call each."""
    layer = layer or channel_layers[DEFAULT_CHANNEL_LAYER].channel_layer
    if hasattr(layer, "send_batch"):
        return layer.send_batch(sends)
    full = []
    for kind, name, message in sends:
        if kind == "channel":
            try:
                layer.send(name, message)
            except layer.ChannelFull:
                full.append(name)
            continue
        # group_channels is not in the ASGI spec (asgi_ipc and asgi_redis have it): without it a
        # poll group stays behind until group_expiry.
        listing = getattr(layer, "group_channels", None)
        members = list(listing(name)) if kind == "group_once" and listing else ()
        if kind == "group" or members or not listing:
            layer.send_group(name, message)
        for member in members:
            layer.group_discard(name, member)
    return full

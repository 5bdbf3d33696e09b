"""What a stored message sends (to the room, its long polls, its sender, the background pool), in
one go."""
import logging

from channels import DEFAULT_CHANNEL_LAYER, channel_layers

from my_project.layers.base import CHANNEL, GROUP, GROUP_ONCE, send_batch

from . import poll, protocol

logger = logging.getLogger(__name__)

MODERATION_CHANNEL = "background.moderate"
NOTIFY_CHANNEL = "background.notify"  # mentions (notifications/consumers.py)


def message_sends(room, stored, created, ack_to=None):
    """The sends for a stored entry of the room's stream (a message, an edit or a delete), in order:
    the room's sockets, then its sender's ack, then the long polls waiting for it, then (a new text
    only) spam scoring."""
    frame = stored.as_frame()
    sends = [(GROUP, room.group, protocol.encode(frame))]
    if ack_to is not None:
        sends.append((CHANNEL, ack_to, protocol.encode(
            {"type": "ack", "client_id": stored.client_id, "id": stored.seq})))
    # A poll joining after this send finds the message stored (it reads the room's last id after
    # joining the group) and answers itself.
    sends.append((GROUP_ONCE, room.poll_group(stored.seq - 1), poll.response(200, [frame])))
    if created and stored.kind != stored.DELETE:  # a new text (an edited one too) is scored
        sends.append((CHANNEL, MODERATION_CHANNEL, {
            "message_id": getattr(stored, "target_pk", stored.pk), "text": stored.text}))
    if created and stored.kind == stored.MESSAGE and "@" in stored.text:
        # Who it mentions is parsed and looked up by the background pool, never here.
        sends.append((CHANNEL, NOTIFY_CHANNEL, notify_job(stored)))
    return sends


def notify_job(stored):
    """The background.notify job of a stored message: what the notification frames need, so the
    pool reads no message back (a message as stored has its room and user at hand)."""
    return {"message_id": stored.pk, "seq": stored.seq, "room_id": stored.room_id, "room": stored.room.slug,
            "user_id": stored.user_id, "user": stored.user.get_username(), "text": stored.text}


def deliver(room, stored, created, ack_to=None):
    """Send a stored message everywhere it goes, in one layer round trip where the layer can (its
    send_batch); a full queue loses only its own send: a full ack is resent by the client (who gets
    the same ack), a full moderation queue leaves the message unscored rather than stall the
    realtime worker."""
    layer = channel_layers[DEFAULT_CHANNEL_LAYER].channel_layer
    full = send_batch(layer, message_sends(room, stored, created, ack_to))
    if ack_to in full:
        logger.warning("No room for the ack of message %d on %s", stored.pk, ack_to)
    if MODERATION_CHANNEL in full:
        logger.warning("%s is full: message %d goes unscored", MODERATION_CHANNEL, stored.pk)
    if NOTIFY_CHANNEL in full:
        logger.warning("%s is full: the mentions of message %d notify nobody", NOTIFY_CHANNEL, stored.pk)

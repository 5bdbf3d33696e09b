"""Per-socket frame ordering that survives a worker dying mid-frame (channels' enforce_ordering, extended)."""
import functools
import logging
import time

from channels.sessions import channel_session, requeue_messages, wait_channel_name

from my_project import channel_sessions

logger = logging.getLogger(__name__)

NEXT = "__channels_next_order"  # the key enforce_ordering uses, so the two agree
PARKED_AT = "chat_parked_at"
RELEASED = "_chat_order_released"  # set on the Message by release()
WAITING = "_chat_order_waiting"  # set by release(): frames parked on the wait channel, None: unknown
# A frame parked this long waits for one that a dead worker popped and never ran: stop waiting.
# The client resends whatever was not acked, so skipping loses nothing; it only unblocks the socket.
GAP_TIMEOUT = 3.0


def ordered(func):
    """Run a socket's frames in daphne's `order`, like channels.sessions.enforce_ordering.

    enforce_ordering parks a frame that arrives early on a per-socket wait channel until the one
    before it has run. If a worker is killed after popping a frame, that frame never runs and every
    later frame of the socket stays parked for good. Here a parked frame remembers when it was first
    parked; each newly arriving frame sends the parked ones round once more, and one that has waited
    GAP_TIMEOUT seconds skips the missing order. Frames below the next expected order (released by a
    skip, or resent) still run rather than being dropped.
    """
    @channel_session
    @functools.wraps(func)
    def inner(message, *args, **kwargs):
        if "order" not in message.content:
            raise ValueError("No `order` in message; @ordered needs daphne's ordered channels")
        order = int(message.content["order"])
        session = message.channel_session
        next_order = session.get(NEXT, 0)
        parked_at = message.content.pop(PARKED_AT, None)
        if order > next_order > 0 and parked_at and time.time() - parked_at > GAP_TIMEOUT:
            logger.warning("Socket %s: frame %d never ran (its worker died?); skipping to %d",
                           message.reply_channel.name, next_order, order)
            next_order = order
        if order <= next_order:
            message._chat_next_order = max(next_order, order + 1)
            try:
                func(message, *args, **kwargs)
            finally:
                # A consumer that raised has still consumed its frame (the layer is at-most-once):
                # the socket's next frames must not wait for it.
                if not getattr(message, RELEASED, False):
                    release(message)
                # None parked when the session was saved: a frame parked since has seen that save
                # (it reads the session after parking) and sent the parked frames round itself.
                if getattr(message, WAITING, None) != 0:
                    requeue_messages(message)
            return
        # Early: park it until the frame before it has run.
        message.content[PARKED_AT] = parked_at or time.time()
        message.content["original_channel"] = message.channel.name
        try:
            message.channel_layer.send(wait_channel_name(message.reply_channel.name), message.content)
        except message.channel_layer.ChannelFull:
            # As if a worker had died holding it: the client resends what is not acked. One line,
            # not a traceback per frame (a socket that floods its wait channel sends many).
            logger.warning("Socket %s: frame %d dropped, its wait channel is full (the client resends it)",
                           message.reply_channel.name, order)
            return
        # Send the parked frames round again when the one awaited has finished meanwhile, or when
        # this frame is new (so a frame stuck behind a dead worker's gets to check its age).
        if parked_at is None or session.load().get(NEXT, 0) >= order:
            requeue_messages(message)
    return inner


def release(message):
    """Let the socket's next frame run before this consumer returns: it saves the channel session
    with the next order. A consumer calls it once the frame's effects are stored and its answer is
    sent (the chat: after the ack), so the work nobody waits for (moderation, long-poll release)
    no longer holds the socket's next frame, which another worker would otherwise park and requeue
    (a client sends its next message when the ack arrives). It must be the consumer's last change
    to the channel session: nothing saves the session after it, as a later save would overwrite
    what the next frame's worker wrote meanwhile."""
    session = message.channel_session
    session[NEXT] = message._chat_next_order
    # The save reads the wait channel's depth in the same round trip where the store can: one
    # round trip less per frame than looking for parked frames afterwards.
    setattr(message, WAITING, channel_sessions.save(session, wait_channel_name(message.reply_channel.name)))
    session.modified = False
    setattr(message, RELEASED, True)

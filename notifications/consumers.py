"""The background pool's notify job: the users a new message mentions get a notification each, and
every open socket of theirs a `notification` frame."""
import logging
import time

from channels import DEFAULT_CHANNEL_LAYER, channel_layers

from chat import delivery, protocol
from chat.models import Message, Room
from chat.sockets import user_group
from my_project.layers.base import GROUP, receive_batch, send_batch

from . import mentions
from .models import Notification

logger = logging.getLogger(__name__)

# As the moderation job (chat/moderation.py): a wake-up lingers for the jobs queued behind the first
# and handles up to BATCH of them with a few queries in all, instead of a few per job.
BATCH = 100
LINGER = 0.05
# The message's text a frame carries at most (the page shows a line of it).
PREVIEW = 200


def notify(message):
    """Consumer of background.notify: notify the users mentioned by this job's message and those of
    the jobs waiting behind it. Idempotent: a job run again finds its notifications made and sends
    their frames again (clients drop ids they have seen)."""
    layer = message.channel_layer
    if "receive_batch" in layer.extensions:  # one round trip however many: worth waiting for more
        time.sleep(LINGER)
    jobs = _complete([message.content] + receive_batch(layer, message.channel.name, BATCH - 1))
    rooms = Room.objects.in_bulk({job["room_id"] for job in jobs})
    wanted = {}
    for job, users in zip(jobs, mentions.resolve([(job["text"], job["user_id"]) for job in jobs])):
        room = rooms.get(job["room_id"])
        for user in users:
            # A user who may not read the room learns nothing of it, not even that it exists.
            if room is not None and room.admits(user):
                wanted[(user.pk, job["message_id"])] = job
    if not wanted:
        return
    made = Notification.record((user, message_pk, job["room_id"]) for (user, message_pk), job in wanted.items())
    unread = Notification.unread_counts({user for user, _ in made})
    sends = [(GROUP, user_group(user), protocol.encode(frame(pk, wanted[(user, message_pk)], unread.get(user, 0))))
             for (user, message_pk), (pk, read) in sorted(made.items(), key=lambda item: item[1][0]) if read is None]
    send_batch(channel_layers[DEFAULT_CHANNEL_LAYER].channel_layer, sends)
    logger.debug("%d notifications for %d messages", len(sends), len(jobs))


def frame(pk, job, unread):
    """The `notification` frame of notification `pk` (made for `job`'s message)."""
    return {"type": "notification", "id": pk, "room": job["room"], "message_id": job["seq"],
            "from": job["user"], "text": job["text"][:PREVIEW], "unread": unread}


def _complete(jobs):
    """The jobs with all their fields: one that names only its message (a job sent by hand, or by a
    release that sent no more) has the rest read, in one query for all such."""
    partial = [job["message_id"] for job in jobs if "text" not in job]
    if not partial:
        return jobs
    stored = Message.objects.select_related("room", "user").in_bulk(partial)
    return [job if "text" in job else delivery.notify_job(stored[job["message_id"]])
            for job in jobs if "text" in job or job["message_id"] in stored]

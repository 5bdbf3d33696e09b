"""Spam scoring of stored messages: slow work for the background pool, off the realtime path."""
import logging
import re
import time

from django.db.models import Case, FloatField, Value, When

from my_project.layers.base import receive_batch
from ops import identity

from .models import Message

logger = logging.getLogger(__name__)

LINK = re.compile(r"https?://\S+", re.IGNORECASE)
REPEAT = re.compile(r"(.)\1{7,}")
SPAM_WORDS = ("free money", "click here", "buy now", "winner", "crypto giveaway")


def spam_score(text):
    """0 (clean) to 1 (certainly spam) from links, shouting, repetition and known phrases."""
    lowered = text.lower()
    letters = [c for c in text if c.isalpha()]
    shouting = sum(c.isupper() for c in letters) / len(letters) if len(letters) >= 12 else 0.0
    score = (0.25 * min(len(LINK.findall(text)), 3)
             + 0.3 * shouting
             + (0.3 if REPEAT.search(text) else 0.0)
             + 0.4 * sum(word in lowered for word in SPAM_WORDS))
    return round(min(score, 1.0), 3)


# Jobs scored per wake-up at most: whatever queued up while the pool was busy or lingering is taken
# in one round trip (a layer with "receive_batch") and stored in one UPDATE (one write transaction on
# the database, which the realtime pool's inserts wait for), instead of a pop, a statement and a
# commit per message.
BATCH = 100
# A wake-up waits this long for jobs to queue up behind the first before taking them: a score is
# nobody's wait, and at hundreds of messages a second tens are scored per wake-up (at one a second,
# one each, 50 ms later).
LINGER = 0.05


def moderate(message):
    """Consumer of background.moderate: score the job and the others waiting behind it, and record
    which pool did it. A job carries the text (a realtime worker had it at hand): no query to read
    it back; a job without it (queued by an older release) reads it."""
    layer = message.channel_layer
    if "receive_batch" in layer.extensions:  # one round trip however many: worth waiting for more
        time.sleep(LINGER)
    jobs = [message.content] + receive_batch(layer, message.channel.name, BATCH - 1)
    texts = {job["message_id"]: job.get("text") for job in jobs}
    missing = [pk for pk, text in texts.items() if text is None]
    if missing:  # jobs of an older release
        texts.update(Message.objects.filter(pk__in=missing).values_list("pk", "text"))
    scores = {pk: spam_score(text) for pk, text in texts.items() if text is not None}
    if not scores:
        return
    Message.objects.filter(pk__in=list(scores)).update(
        spam_score=Case(*[When(pk=pk, then=Value(score)) for pk, score in scores.items()],
                        output_field=FloatField()),
        moderated_by=identity.tag())
    for pk, score in scores.items():
        if score >= 0.8:
            logger.warning("Message %d scored %.2f as spam", pk, score)

"""Spam scoring of stored messages: slow work for the background pool, off the realtime path."""
import logging
import re

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


def moderate(message):
    """Consumer of background.moderate: score one message and record which pool did it. The job
    carries the text (a realtime worker had it at hand): no query to read it back; a job without
    it (queued by an older release) reads it."""
    message_id, text = message.content["message_id"], message.content.get("text")
    if text is None:
        text = Message.objects.filter(pk=message_id).values_list("text", flat=True).first()
        if text is None:
            return
    score = spam_score(text)
    Message.objects.filter(pk=message_id).update(
        spam_score=score, moderated_by=identity.tag())
    if score >= 0.8:
        logger.warning("Message %d scored %.2f as spam", message_id, score)

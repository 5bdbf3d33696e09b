"""The background pool's spam scoring."""
from channels.test import ChannelTestCase, Client
from django.contrib.auth.models import User

from chat.models import Message, Room
from chat.moderation import spam_score


def test_clean_text_scores_zero():
    """Ordinary chat scores 0."""
    assert spam_score("see you at lunch?") == 0.0


def test_spam_scores_high():
    """Links, shouting and known phrases push the score to the top."""
    assert spam_score("CLICK HERE FREE MONEY http://a.example http://b.example") >= 0.8


class ModerateConsumerTests(ChannelTestCase):
    def test_consumer_records_score_and_pool(self):
        """background.moderate stores the score and which pool and process scored it."""
        user = User.objects.create_user("carol", password="pw-carol-123")
        message, _ = Message.post(Room.objects.get(slug="lobby"), user, "m1", "buy now!!!")
        Client().send_and_consume("background.moderate", {"message_id": message.pk})
        message.refresh_from_db()
        assert message.spam_score > 0
        assert message.moderated_by.startswith("web/")  # the unit tests run as the "web" pool

    def test_job_with_the_text_needs_no_read(self):
        """A job carrying the text (what the realtime pool sends) is scored without reading it back;
        one without it (an older release's) still is."""
        user = User.objects.create_user("dave", password="pw-dave-1234")
        first, _ = Message.post(Room.objects.get(slug="lobby"), user, "m2", "CLICK HERE http://x.example")
        second, _ = Message.post(Room.objects.get(slug="lobby"), user, "m3", "hello")
        Client().send_and_consume("background.moderate", {"message_id": first.pk, "text": first.text})
        Client().send_and_consume("background.moderate", {"message_id": second.pk})
        first.refresh_from_db()
        second.refresh_from_db()
        assert first.spam_score > 0 and second.spam_score == 0.0
        assert first.moderated_by and second.moderated_by

    def test_jobs_queued_behind_are_scored_in_one_batch(self):
        """Jobs waiting behind the one consumed are drained and scored with it (one UPDATE), each
        with its own score."""
        user = User.objects.create_user("erin", password="pw-erin-1234")
        room = Room.objects.get(slug="lobby")
        messages = [Message.post(room, user, "b%d" % n, text)[0]
                    for n, text in enumerate(["hi", "BUY NOW http://x.example click here", "ok"])]
        client = Client()
        for message in messages[1:]:
            client.send("background.moderate", {"message_id": message.pk, "text": message.text})
        client.send_and_consume("background.moderate", {"message_id": messages[0].pk, "text": messages[0].text})
        assert client.get_next_message("background.moderate") is None
        scores = [Message.objects.get(pk=m.pk).spam_score for m in messages]
        assert scores == [0.0, spam_score(messages[1].text), 0.0] and scores[1] > 0

"""Mentions: which names a text mentions, and which users they are."""
from django.contrib.auth.models import User
from django.test import TestCase

from notifications import mentions
from notifications.mentions import names


def first_forms(text):
    return [forms[0] for forms in names(text)]


def test_plain_mentions_in_order_each_once():
    """@name anywhere but inside a word, in order of appearance, a repeated one once."""
    assert first_forms("@amy hi @bob, and @amy again (@cy)") == ["amy", "bob", "cy"]


def test_email_addresses_and_links_are_not_mentions():
    """The @ of an e-mail address (a@b.c), of "@@x" and of a profile link (host/@name) mentions nobody."""
    assert names("write to a@b.c or bob@example.com") == []
    assert names("@@x") == []
    assert names("see https://social.example/@bob") == []


def test_username_characters():
    """Django's username characters (letters of any script, digits, . @ + - _) make up the name."""
    assert first_forms("@jo.e-x+1_y @joe@home @émile") == ["jo.e-x+1_y", "joe@home", "émile"]


def test_trailing_punctuation_is_tried_both_ways():
    """"thanks @bob." tries "bob." (a valid username) first, then "bob"."""
    assert names("thanks @bob.") == [("bob.", "bob")]
    assert names("@.") == [(".",)]


def test_names_are_normalized_as_the_user_model_does():
    """NFKC, as AbstractBaseUser.normalize_username: full-width letters are the ASCII name; case is kept."""
    assert first_forms("@ｂｏｂ @Bob") == ["bob", "Bob"]


def test_too_long_and_too_many():
    """A name longer than a username can be is nobody; a message notifies its first MAX_MENTIONS names."""
    assert names("@" + "a" * 151) == []
    crowd = " ".join("@u%d" % n for n in range(mentions.MAX_MENTIONS + 5))
    assert len(names(crowd)) == mentions.MAX_MENTIONS


class ResolveTests(TestCase):
    def setUp(self):
        self.amy = User.objects.create_user("amy", password="pw-amy-12345")
        self.bob = User.objects.create_user("bob", password="pw-bob-12345")
        self.bob_dot = User.objects.create_user("bob.", password="pw-bob-12345")
        self.big_bob = User.objects.create_user("Bob", password="pw-bob-12345")

    def test_existing_users_only_without_the_author(self):
        """Names of nobody are dropped, and so is the author's own."""
        assert mentions.mentioned("@amy @bob @nobody", author=self.amy) == [self.bob]

    def test_case_is_the_user_models(self):
        """Usernames compare as the user model does (exactly): @Bob is Bob, not bob."""
        assert mentions.mentioned("@Bob") == [self.big_bob]
        assert mentions.mentioned("@AMY") == []

    def test_trailing_dot_prefers_the_exact_name(self):
        """"@bob." is the user "bob." when there is one, else "bob"; the same user is named once."""
        assert mentions.mentioned("hi @bob.") == [self.bob_dot]
        self.bob_dot.delete()
        assert mentions.mentioned("hi @bob. @bob") == [self.bob]

    def test_many_texts_one_query(self):
        """A batch of texts is resolved with one query."""
        with self.assertNumQueries(1):
            found = mentions.resolve([("@amy", self.bob.pk), ("@bob @amy", None), ("no one", None)])
        assert found == [[self.amy], [self.bob, self.amy], []]

"""The users a message names with `@username`: parsed from its text, resolved to existing users."""
import re

from django.contrib.auth import get_user_model

# A mention is "@" and Django's username characters (its UnicodeUsernameValidator: letters, digits
# and . @ + - _), starting with one that is not "@". The "@" must not follow such a character (the
# middle of an e-mail address, a@b.c, or of "@@x") nor a "/" (a profile link, https://host/@name).
MENTION = re.compile(r"(?<![\w.@+/-])@([\w.+-][\w.@+-]*)")
# Characters a mention may end with that usually end the sentence instead ("thanks @bob."): a name
# ending with them is tried as written first, then without them.
TRAILING = ".@+-"
MAX_LENGTH = 150  # Django's username length: a longer name is nobody's
# The mentions of one message that notify: a message naming a crowd is not a way to page everyone.
MAX_MENTIONS = 20
# Names per query: SQLite allows 999 parameters a statement (a batch of jobs may name thousands).
CHUNK = 500


def names(text):
    """The first MAX_MENTIONS mentions of `text` in order, each once: for each, the names to try,
    best first."""
    User = get_user_model()
    found = []
    for match in MENTION.finditer(text):
        # As the user model compares usernames: exactly, after its Unicode normalization (NFKC).
        name = User.normalize_username(match.group(1))
        forms = tuple(dict.fromkeys(form for form in (name, name.rstrip(TRAILING))
                                    if form and len(form) <= MAX_LENGTH))
        if forms and forms not in found:
            found.append(forms)
            if len(found) == MAX_MENTIONS:
                break
    return found


def resolve(texts):
    """For each (text, author's pk): the users it mentions, in order, each once, the author left
    out (one query for all of them, per 500 names)."""
    User = get_user_model()
    parsed = [names(text) for text, _ in texts]
    wanted = {form for mentions in parsed for forms in mentions for form in forms}
    if not wanted:
        return [[] for _ in texts]
    field, wanted = User.USERNAME_FIELD, sorted(wanted)
    users = {user.get_username(): user for start in range(0, len(wanted), CHUNK)
             for user in User.objects.filter(**{field + "__in": wanted[start:start + CHUNK]})}
    out = []
    for (_, author_pk), mentions in zip(texts, parsed):
        found = {}
        for forms in mentions:
            user = next((users[form] for form in forms if form in users), None)
            if user is not None and user.pk != author_pk:
                found.setdefault(user.pk, user)
        out.append(list(found.values()))
    return out


def mentioned(text, author=None):
    """The users `text` mentions, without its author."""
    return resolve([(text, getattr(author, "pk", None))])[0]

"""Failed logins, kept in the database: the one store every topology's pages share (gunicorn,
daphne's workers, a platform's processes on several machines)."""
from django.db import models


class LoginFailure(models.Model):
    """One failed login, counted against its username and, in a second row, its client address.

    `key` is a digest of the kind and value (guard.throttle.key): a bounded, indexed column, and no
    username or address kept in the clear."""
    key = models.CharField(max_length=64, db_index=True)
    at = models.DateTimeField(db_index=True)

    def __str__(self):
        return "%s at %s" % (self.key[:12], self.at)

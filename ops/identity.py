"""Which process this is: its pool, pid and release, as pages, polls, probes and counters tell it."""
import os

from django.conf import settings

from . import releases


def identity():
    """{pool, pid, release} of this process."""
    return {"pool": settings.CHAT_POOL, "pid": os.getpid(), "release": releases.running()}


def tag():
    """"<pool>/<pid>": the X-Served-By header of pages and polls, and who moderated a message."""
    return "%s/%d" % (settings.CHAT_POOL, os.getpid())

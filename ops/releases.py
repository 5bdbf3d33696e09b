"""Releases of the worker code: copies of the app under var/releases/, and the `current` link to one."""
import functools
import os
import shutil

from django.conf import settings

# What a release carries: the code the workers import. Everything else stays with the checkout.
CODE = ("manage.py", "my_project", "chat", "ops", "notifications", "tokens", "guard")
NAME_FILE = "RELEASE"


class ReleaseError(Exception):
    """A release that cannot be made or used; the message says why."""


def root():
    return settings.CHAT_RELEASES_DIR


def current_link():
    return os.path.join(root(), "current")


def path(name):
    if not name or "/" in name or name in ("current", ".", ".."):
        raise ReleaseError("%r is not a release name" % name)
    return os.path.join(root(), name)


def name_of(directory, default="dev"):
    """The release a code directory is: its RELEASE file, or `default` for a checkout."""
    try:
        with open(os.path.join(directory, NAME_FILE)) as named:
            return named.read().strip()
    except FileNotFoundError:
        return default


@functools.lru_cache(maxsize=None)
def running():
    """The release of the code this process runs (CHAT_RELEASE names a checkout's)."""
    return name_of(settings.BASE_DIR, default=settings.CHAT_RELEASE)


def current():
    """(name, directory) the current link points at; the checkout when there is none yet."""
    if not os.path.islink(current_link()):
        return name_of(settings.BASE_DIR), settings.BASE_DIR
    target = os.path.realpath(current_link())
    return name_of(target), target


def ensure_current():
    """A fresh deployment runs the checkout's code as its current release."""
    os.makedirs(root(), exist_ok=True)
    if not os.path.islink(current_link()):
        point_current_at(settings.BASE_DIR)


def point_current_at(directory):
    """Switch `current` atomically (a new link renamed over the old one)."""
    temporary = current_link() + ".new"
    if os.path.lexists(temporary):
        os.unlink(temporary)
    os.symlink(directory, temporary)
    os.replace(temporary, current_link())


def create(name, source=None):
    """Copy the code of `source` (default: this checkout) into var/releases/<name>."""
    target = path(name)
    if os.path.exists(target):
        raise ReleaseError("release %s exists already (%s)" % (name, target))
    source = source or settings.BASE_DIR
    missing = [part for part in CODE if not os.path.exists(os.path.join(source, part))]
    if missing:
        raise ReleaseError("%s is not a checkout of this project (no %s)" % (source, ", ".join(missing)))
    os.makedirs(target)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in CODE:
        origin = os.path.join(source, part)
        if os.path.isdir(origin):
            shutil.copytree(origin, os.path.join(target, part), ignore=ignore)
        else:
            shutil.copy2(origin, os.path.join(target, part))
    with open(os.path.join(target, NAME_FILE), "w") as named:
        named.write(name + "\n")
    return target


def available():
    if not os.path.isdir(root()):
        return []
    return sorted(n for n in os.listdir(root()) if n not in ("current", "current.new")
                  and os.path.isdir(os.path.join(root(), n)))

"""Channel sessions (per-socket state between frames) kept next to the channel layer, not in the
database."""
import logging
import os
import tempfile
import time

from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, SessionBase

logger = logging.getLogger(__name__)


class SessionStore(SessionBase):
    """A channel session in the layer's own store (Redis) or, with the IPC layer, in files.

    channels 1.x keeps a socket's channel session in SESSION_ENGINE, the database by default: every
    frame loads it, checks it exists and saves it (the ordering counter, the rate limit), so a chat
    message cost three database commits on top of its own. Set as CHANNEL_SESSION_ENGINE (a setting
    channels reads), this store answers a frame with one read and one write to the layer's Redis
    shard for the key, or to a file on the same machine as the IPC layer. HTTP sessions (logins)
    stay in the database. Channel sessions expire CHAT_CHANNEL_SESSION_TTL seconds after their last
    write; every frame of a socket, pings included, writes.
    """

    def __init__(self, session_key=None):
        super(SessionStore, self).__init__(session_key)
        self._stored = None  # whether our key existed when we last looked (saves an EXISTS)
        self.backend = _backend()

    def load(self):
        data = self.backend.get(self._session_key) if self._session_key else None
        self._stored = data is not None
        if data is None:
            return {}
        try:
            return self.decode(data)
        except Exception:  # decode() returns {} on a bad hash; anything else is a torn value
            logger.warning("Channel session %s was unreadable; starting it empty", self._session_key)
            return {}

    def exists(self, session_key):
        if session_key == self._session_key and self._stored is not None:
            return self._stored
        return bool(session_key) and self.backend.get(session_key) is not None

    def create(self):
        while True:
            self._session_key = self._get_new_session_key()
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return

    def save(self, must_create=False):
        if self.session_key is None:
            return self.create()
        data = self.encode(self._get_session(no_load=must_create))
        if not self.backend.set(self.session_key, data, settings.CHAT_CHANNEL_SESSION_TTL,
                                only_new=must_create):
            raise CreateError
        self._stored = True

    def delete(self, session_key=None):
        session_key = session_key or self.session_key
        if session_key:
            self.backend.delete(session_key)
            if session_key == self._session_key:
                self._stored = False

    @classmethod
    def clear_expired(cls):
        _backend().clear_expired()


def _backend():
    """The layer's own store when it has one (its "values" extension), else files on this machine."""
    from channels import DEFAULT_CHANNEL_LAYER, channel_layers
    layer = channel_layers[DEFAULT_CHANNEL_LAYER].channel_layer
    if "values" in layer.extensions:
        return layer.values("session")
    return FileBackend(settings.CHAT_PATHS.channel_sessions)


class FileBackend(object):
    """Session values as files in one directory (the IPC layer's machine), replaced atomically; a
    file older than its time to live counts as missing."""

    def __init__(self, directory):
        self.directory = directory

    def _path(self, key):
        if not key.isalnum():
            raise ValueError("bad session key %r" % key)
        return os.path.join(self.directory, key)

    def get(self, key):
        path = self._path(key)
        try:
            with open(path) as stored:
                value = stored.read()
            if time.time() - os.stat(path).st_mtime > settings.CHAT_CHANNEL_SESSION_TTL:
                return None
        except FileNotFoundError:
            return None
        return value

    def set(self, key, value, ttl, only_new=False):
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        path = self._path(key)
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".new-")
        with os.fdopen(fd, "w") as out:
            out.write(value)
        if only_new:
            try:
                os.link(temporary, path)  # atomic: exactly one of two racing creators wins
                os.unlink(temporary)
                return True
            except FileExistsError:
                if self.get(key) is not None:
                    os.unlink(temporary)
                    return False
        os.replace(temporary, path)  # readers see the old value or the new one, never half
        return True

    def delete(self, key):
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass

    def clear_expired(self):
        cutoff = time.time() - settings.CHAT_CHANNEL_SESSION_TTL
        for name in os.listdir(self.directory) if os.path.isdir(self.directory) else ():
            path = os.path.join(self.directory, name)
            try:
                if os.stat(path).st_mtime < cutoff:
                    os.unlink(path)
            except FileNotFoundError:
                pass

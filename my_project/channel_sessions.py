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

    def save_and_depth(self, channel):
        """save() an existing session; the number of messages waiting on `channel`, read in the
        same round trip where the store can (the Redis layer, one shard), else None."""
        if self.session_key is None or not self._stored:
            self.save()
            return None
        data = self.encode(self._get_session())
        depth = self.backend.set_and_depth(self.session_key, data, settings.CHAT_CHANNEL_SESSION_TTL, channel)
        self._stored = True
        return depth

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
    paths = settings.CHAT_PATHS
    if "machine_local" in layer.extensions:  # the IPC layer: in tmpfs, beside its shared memory
        return FileBackend(paths.channel_sessions_in_memory, previous=paths.channel_sessions,
                           old_readers=layer.old_code_workers)
    return FileBackend(paths.channel_sessions)


class FileBackend(object):
    """Session values as files in one directory (the IPC layer's machine, in tmpfs), replaced
    atomically; a file older than its time to live counts as missing.

    `previous` is where the code before the move to tmpfs kept them. A rollout restarts workers one
    by one, so old and new code answer frames of the same socket for a while: a value is read from
    whichever directory holds the newer copy, and written to the previous one too while
    old_readers() says old-code workers are around (the IPC layer knows it from its doorbell).
    """

    def __init__(self, directory, previous=None, old_readers=None):
        self.directory = directory
        self.previous = previous
        self.old_readers = old_readers or (lambda: False)

    def _path(self, key, directory=None):
        if not key.isalnum():
            raise ValueError("bad session key %r" % key)
        return os.path.join(directory or self.directory, key)

    @staticmethod
    def _read(path):
        """(modification time in ns, value) of a file, or None."""
        try:
            with open(path) as stored:
                return os.fstat(stored.fileno()).st_mtime_ns, stored.read()
        except FileNotFoundError:
            return None

    def get(self, key):
        found = self._read(self._path(key))
        if self.previous:
            older = self._read(self._path(key, self.previous))
            if older and (found is None or older[0] > found[0]):
                found = older
        if found is None or time.time() - found[0] / 1e9 > settings.CHAT_CHANNEL_SESSION_TTL:
            return None
        return found[1]

    def set(self, key, value, ttl, only_new=False):
        if not self._write(self.directory, key, value, only_new):
            return False
        if self.previous and self.old_readers():
            self._write(self.previous, key, value, False)
        return True

    def _write(self, directory, key, value, only_new):
        path = self._path(key, directory)
        try:
            fd, temporary = tempfile.mkstemp(dir=directory, prefix=".new-")
        except FileNotFoundError:  # the first write (a makedirs on every write was 2% of a worker)
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=directory, prefix=".new-")
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

    def set_and_depth(self, key, value, ttl, channel):
        """set(); None: files tell nothing of the layer's channels."""
        self.set(key, value, ttl)
        return None

    def delete(self, key):
        for directory in filter(None, (self.directory, self.previous)):
            try:
                os.unlink(self._path(key, directory))
            except FileNotFoundError:
                pass

    def clear_expired(self):
        cutoff = time.time() - settings.CHAT_CHANNEL_SESSION_TTL
        for directory in filter(None, (self.directory, self.previous)):
            self._clear_expired(directory, cutoff)

    @staticmethod
    def _clear_expired(directory, cutoff):
        for name in os.listdir(directory) if os.path.isdir(directory) else ():
            path = os.path.join(directory, name)
            try:
                if os.stat(path).st_mtime < cutoff:
                    os.unlink(path)
            except FileNotFoundError:
                pass


def save(session, channel):
    """Save a channel session (ours or any SESSION_ENGINE's); the depth of `channel` when the save
    read it in the same round trip, else None."""
    if isinstance(session, SessionStore):
        return session.save_and_depth(channel)
    session.save()
    return None

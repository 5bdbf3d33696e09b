"""A wake-up call between the processes sharing an IPC channel layer."""
import errno
import logging
import os
import select
import socket
import threading
import time
import uuid

logger = logging.getLogger(__name__)
WANTS = ".wants"  # suffix of the file next to a socket naming the channels its process waits on


class Doorbell(object):
    """One Unix datagram socket per listening process in a shared directory; a send rings the
    processes that wait on its channel.

    asgi_ipc has no blocking receive: daphne polls it every 50 ms and runworker every 10 ms, which
    is the whole of its ~52 ms round trip. Here a process that waits binds a socket in `directory`,
    names the channels it waits on in a file beside it, and sleeps in select()/the reactor; a send
    writes one byte to the socket of every process waiting on that channel (a few µs each, never
    blocking). Ringing only those matters: each wake costs the woken process a pass over the whole
    store, and with every process woken by every send the idle pools spent more CPU than the busy
    one. A listener whose process died refuses the datagram and its files are removed by the next
    ring. No wake is missed: a listener drains its socket before it looks at the store and only
    then sleeps.
    """

    def __init__(self, directory, tag=None):
        self.directory = directory
        self.tag = tag  # announced beside the channels (see IPCChannelLayer: which store a reader reads)
        self.sock = None
        self.sock_pid = None
        self.path = None
        self.wants = None  # the channels announced for this process
        self.lock = threading.Lock()
        self._peers = (None, 0.0, {})  # (directory mtime, when listed, {socket path: channels or None})

    def listen(self, channels):
        """This process's socket, created on first use; announces the channels it waits on."""
        wants = frozenset(channels)
        with self.lock:
            if self.sock is None or self.sock_pid != os.getpid():  # a fork gets a socket of its own
                os.makedirs(self.directory, mode=0o700, exist_ok=True)
                self.path = os.path.join(self.directory, "%d-%s" % (os.getpid(), uuid.uuid4().hex[:8]))
                self._announce(wants)  # before the socket exists, so no sender sees it unannounced
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.setblocking(False)
                sock.bind(self.path)
                self.sock, self.sock_pid = sock, os.getpid()
            elif not wants <= self.wants:  # only ever widened: a spurious wake is harmless
                self._announce(self.wants | wants)
        return self.sock

    def _announce(self, wants):
        temporary = "%s.%s.tmp" % (self.path, uuid.uuid4().hex[:6])
        with open(temporary, "w") as out:
            # The tag is one more line: older code reads it as a channel nobody sends to.
            out.write("\n".join(sorted(wants | {self.tag} if self.tag else wants)))
        os.replace(temporary, self.path + WANTS)
        self.wants = wants

    def drain(self, channels):
        """Forget the rings received so far (call before looking at the store)."""
        sock = self.listen(channels)
        try:
            while sock.recv(64):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def wait(self, channels, timeout):
        """Sleep until a ring or timeout seconds."""
        select.select([self.listen(channels)], [], [], timeout)

    def ring(self, channels):
        """Wake every process waiting on one of these channels (the caller's own included: another
        of its threads may wait)."""
        for path, wants in self._listeners().items():
            if wants is not None and wants.isdisjoint(channels):
                continue
            try:
                self._sender().sendto(b"!", path)
            except (BlockingIOError, InterruptedError):
                pass  # its buffer is full of rings already: it is awake
            except (ConnectionRefusedError, FileNotFoundError):
                self._forget(path)  # its process is gone
            except OSError as exc:
                if exc.errno != errno.ENOTSOCK:
                    logger.warning("Cannot ring %s: %s", path, exc)
                self._forget(path)

    def untagged(self, channels):
        """The channels among these that a listener without this doorbell's tag waits on (one that
        announced nothing counts as waiting on every channel)."""
        found = set()
        for wants in self.untagged_wants():
            if wants is None:
                return set(channels)
            found.update(wants.intersection(channels))
        return found

    def untagged_wants(self):
        """What each listener without this doorbell's tag waits on (None: it announced nothing)."""
        return [wants for wants in self._listeners().values() if wants is None or self.tag not in wants]

    def _listeners(self):
        try:
            mtime = os.stat(self.directory).st_mtime_ns
        except FileNotFoundError:
            return {}
        now = time.monotonic()
        # Directory times are coarse (a jiffy on tmpfs): two changes in one tick look like one, so
        # the listing is also refreshed every half second.
        if mtime != self._peers[0] or now - self._peers[1] > 0.5:
            peers = {}
            for name in os.listdir(self.directory):
                if name.endswith(WANTS) or name.endswith(".tmp"):
                    continue
                path = os.path.join(self.directory, name)
                try:
                    with open(path + WANTS) as wants:
                        peers[path] = frozenset(wants.read().split("\n"))
                except FileNotFoundError:
                    peers[path] = None  # not announced: ring it for everything
            self._peers = (mtime, now, peers)
        return self._peers[2]

    def _sender(self):
        sender = getattr(self, "_send_sock", None)
        if sender is None or self._send_pid != os.getpid():
            sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sender.setblocking(False)
            self._send_sock, self._send_pid = sender, os.getpid()
        return sender

    def _forget(self, path):
        for stale in (path, path + WANTS):
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass

    def close(self):
        """Remove this process's socket (at exit; a killed process's one is removed by a ring)."""
        with self.lock:
            if self.sock is not None and self.sock_pid == os.getpid():
                self.sock.close()
                self._forget(self.path)
            self.sock = None

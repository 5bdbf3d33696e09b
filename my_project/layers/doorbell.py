"""A wake-up call between the processes sharing an IPC channel layer."""
import errno
import logging
import os
import select
import socket
import threading
import uuid

logger = logging.getLogger(__name__)


class Doorbell(object):
    """One Unix datagram socket per listening process in a shared directory; a sender rings them all.

    asgi_ipc has no blocking receive: daphne polls it every 50 ms and runworker every 10 ms, which
    is the whole of its ~52 ms round trip. Here a process that waits binds a socket in `directory`
    and sleeps in select()/the reactor; a send writes one byte to every socket there (a few µs
    each, never blocking). A listener whose process died refuses the datagram and its socket file
    is removed by the next ring. A ring wakes every listener, which then looks at the store: a
    spurious wake costs one look, a missed one cannot happen because a listener drains its socket
    before it looks and only then sleeps.
    """

    def __init__(self, directory):
        self.directory = directory
        self.sock = None
        self.path = None
        self.lock = threading.Lock()
        self._peers = (None, ())  # (directory mtime, socket paths) cached between rings

    def listen(self):
        """This process's socket, created on first use."""
        with self.lock:
            if self.sock is None or self.sock_pid != os.getpid():  # a fork gets a socket of its own
                os.makedirs(self.directory, mode=0o700, exist_ok=True)
                self.path = os.path.join(self.directory, "%d-%s" % (os.getpid(), uuid.uuid4().hex[:8]))
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.setblocking(False)
                sock.bind(self.path)
                self.sock, self.sock_pid = sock, os.getpid()
        return self.sock

    def drain(self):
        """Forget the rings received so far (call before looking at the store)."""
        sock = self.listen()
        try:
            while sock.recv(64):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def wait(self, timeout):
        """Sleep until a ring or timeout seconds."""
        select.select([self.listen()], [], [], timeout)

    def ring(self):
        """Wake every listening process (the caller's own included: another thread may wait)."""
        for path in self._listeners():
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

    def _listeners(self):
        try:
            mtime = os.stat(self.directory).st_mtime_ns
        except FileNotFoundError:
            return ()
        if mtime != self._peers[0]:
            paths = tuple(os.path.join(self.directory, name) for name in os.listdir(self.directory))
            self._peers = (mtime, paths)
        return self._peers[1]

    def _sender(self):
        sender = getattr(self, "_send_sock", None)
        if sender is None or self._send_pid != os.getpid():
            sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sender.setblocking(False)
            self._send_sock, self._send_pid = sender, os.getpid()
        return sender

    def _forget(self, path):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def close(self):
        """Remove this process's socket (at exit; a killed process's one is removed by a ring)."""
        with self.lock:
            if self.sock is not None and self.sock_pid == os.getpid():
                self.sock.close()
                self._forget(self.path)
            self.sock = None

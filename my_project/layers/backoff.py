"""When to try a lost server again: at once after a success, then after a delay doubling to a cap."""
import threading
import time


class Backoff(object):
    """The next attempt is allowed `least` seconds after the first failure, doubling up to `most`
    while the failures go on; a success allows the next one at once."""

    def __init__(self, least, most):
        self.least, self.most = least, most
        self.failures, self.next_attempt, self.since, self.last_error = 0, 0.0, None, None
        self.lock = threading.Lock()

    def wait(self):
        """Seconds until the next attempt is allowed (0: now)."""
        return max(0.0, self.next_attempt - time.time())

    def failed(self, error):
        with self.lock:
            self.failures += 1
            self.since = self.since or time.time()
            self.last_error = error
            self.next_attempt = time.time() + min(self.most, self.least * 2 ** (self.failures - 1))

    def succeeded(self):
        """Seconds the server was away (0 if it was not), and forget it."""
        with self.lock:
            away = time.time() - self.since if self.since else 0.0
            self.failures, self.next_attempt, self.since = 0, 0.0, None
            return away

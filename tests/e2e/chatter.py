"""A reference chat client in Python, speaking the same protocol as the page's client.js: an outbox
resent until acked (across reconnects), in order after a rate_limited pause, at once after a
server_error; dedupe by seq, catch-up by seq on connect and on a gap; edits and deletes of its own
messages, the same way."""
import collections
import json
import threading
import time
import uuid

from harness.client import Browser

# At most this many messages in flight (sent, not acked), oldest first, each resent after RESEND
# seconds without an ack: a client that blasts its whole backlog after a reconnect only fills the
# server's queues (daphne closes sockets whose frames find websocket.receive full).
WINDOW = 10
RESEND = 3.0
# A socket on which the server has said nothing for this long while a message waits for its ack is
# dead (its interface host cut off: no close ever comes): drop it and reconnect (the README's contract).
SILENCE = 10.0
# server_error: the server failed on that message (a bug in the worker that took it, an outage) and
# asks for it again after retry_after_ms (0: at once; another worker usually takes it). After this
# many in a row for one message, each further try waits longer, doubling from FAILED_BACKOFF up to
# RESEND, so a wholly broken pool is not hammered.
FAILED_FREE = 3
FAILED_BACKOFF = 0.1
# A message resent on one socket for this long without an ack (and no rate_limited pause) means the
# socket's way in is broken though frames still come out (a half-open path to a cut-off interface
# host): reconnect too. Above a slow canary's worst (about 11 s in the fault suite).
STUCK = 20.0


class Chatter(object):
    """One user with one socket in one room."""

    def __init__(self, site_url, username, room="lobby", browser=None):
        self.browser = browser or Browser(site_url).signup(username)
        self.username = username
        self.room = room
        self.lock = threading.RLock()
        self.outbox = collections.OrderedDict()  # client_id -> text (a message) or a change, until acked
        self.transmitted = {}   # client_id -> when last sent on the current socket
        self.acks = {}          # client_id -> seq of the stored entry
        self.seen = {}          # seq -> frame of the room's stream (messages, edits, deletes)
        self.raw_duplicates = 0  # frames for an id already seen (resends are broadcast again)
        self.errors = []
        self.rejected = {}      # client_id -> error code, for messages the server will never take
        self.paused_until = 0.0  # after rate_limited: nothing is sent before this
        self.waiting_for = None  # the refused message the server waits for: sent first
        self.reconnects = 0
        self.gave_up = 0        # sockets this client dropped by the contract's rules (silent, stuck)
        self.ws = None
        self.reader = None
        self.sent_at = {}       # client_id -> first send time, for latency
        self.latencies = []
        self.acked_times = []   # when each ack arrived, for the recovery time after a fault
        self.heard = 0.0        # when the server last said anything on the current socket
        self.first_sent = {}    # client_id -> first transmission on the current socket
        # client_id -> transmissions on the current socket not answered yet (an ack or an error
        # answers each frame that ran): an answer to an older copy is stale and moves nothing.
        self.unanswered = collections.Counter()
        self.failures = {}      # client_id -> server_errors in a row

    # ---- connection ----------------------------------------------------------------------------
    def connect(self, timeout=10):
        ws = self.browser.websocket("/ws/rooms/%s/" % self.room, timeout=timeout)
        ws.settimeout(None)
        with self.lock:
            self.ws = ws
            self.heard = time.time()
            self.transmitted.clear()  # nothing is in flight on a new socket
            self.first_sent.clear()
            self.unanswered.clear()
        self.reader = threading.Thread(target=self._read, args=(ws,), daemon=True)
        self.reader.start()
        self.catch_up()
        self.flush()
        return self

    def connected(self):
        return self.ws is not None

    def ensure(self):
        """Reconnect if the socket dropped or went silent; True when connected."""
        with self.lock:
            now = time.time()
            silent = self.ws is not None and self.outbox and now - self.heard > SILENCE and \
                now - min(self.sent_at[c] for c in self.outbox) > SILENCE
            stuck = self.ws is not None and now >= self.paused_until and any(
                now - self.first_sent[c] > STUCK for c in self.outbox if c in self.first_sent)
        if silent or stuck:
            self.gave_up += 1
            self.close()
        if self.connected():
            return True
        try:
            self.connect()
            self.reconnects += 1
            return True
        except Exception:  # daphne restarting, workers down: try again later
            return False

    def close(self):
        with self.lock:
            ws, self.ws = self.ws, None
        if ws is not None:
            ws.close()

    def _read(self, ws):
        try:
            while True:
                frame = json.loads(ws.recv())
                self._handle(frame)
        except Exception:  # closed, reset, or the server went away
            with self.lock:
                if self.ws is ws:
                    self.ws = None

    def _answers_latest(self, client_id):
        """Count an answer to one of client_id's transmissions; True when it answers the latest."""
        if self.unanswered[client_id] > 0:
            self.unanswered[client_id] -= 1
        return self.unanswered[client_id] == 0

    def _handle(self, frame):
        with self.lock:
            self.heard = time.time()
            if frame["type"] in STREAM:
                self._see(frame)
            elif frame["type"] == "ack":
                self._answers_latest(frame["client_id"])
                self._acked(frame["client_id"], frame["id"])
            elif frame["type"] == "error":
                self.errors.append(frame)
                if frame.get("client_id") is not None and not self._answers_latest(frame["client_id"]):
                    # An answer to a copy sent before the latest one: the latest's answer decides.
                    # Resending the window on each stale rate_limited would multiply the frames in
                    # flight (ten refusals, ten windows, a hundred refusals...) until the socket's
                    # wait channel on the server overflows.
                    self.first_sent.clear()  # the server answered: the socket works
                elif frame["code"] == "rate_limited":
                    self.waiting_for = frame.get("waiting_for") or frame.get("client_id") or self.waiting_for
                    self._pause(frame["retry_after_ms"] / 1000.0)
                elif frame["code"] == "server_error" and frame.get("client_id") in self.outbox:
                    self._retry(frame["client_id"], frame.get("retry_after_ms", 0) / 1000.0)
                elif frame.get("client_id") in self.outbox:  # refused for good: sending again won't help
                    self.rejected[frame["client_id"]] = frame["code"]
                    del self.outbox[frame["client_id"]]

    def _pause(self, seconds):
        """The README's duty under rate limits: send nothing for retry_after_ms, then resend the
        message the server waits for, then the other unacked ones in the order first sent (the
        server refuses the others until it has that one)."""
        self.paused_until = max(self.paused_until, time.time() + seconds)
        self.transmitted.clear()
        self.first_sent.clear()  # the server answered: the socket works
        timer = threading.Timer(max(0.0, self.paused_until - time.time()), self.flush)
        timer.daemon = True
        timer.start()

    def _retry(self, client_id, seconds):
        """The README's duty on server_error: send that message again after retry_after_ms (at once
        for 0), backing off only after FAILED_FREE failures of it in a row."""
        failures = self.failures[client_id] = self.failures.get(client_id, 0) + 1
        if failures > FAILED_FREE:
            seconds = max(seconds, min(RESEND, FAILED_BACKOFF * 2 ** (failures - FAILED_FREE - 1)))
        # Due `seconds` from now by flush's rule; the socket answered, so it is not stuck.
        self.transmitted[client_id] = time.time() - RESEND - 0.001 + seconds
        self.first_sent.pop(client_id, None)
        if seconds <= 0:
            self.flush()
        else:
            timer = threading.Timer(seconds, self.flush)
            timer.daemon = True
            timer.start()

    def _see(self, frame):
        seq = frame.get("seq", frame["id"])
        if seq in self.seen:
            self.raw_duplicates += 1
            return
        self.seen[seq] = frame
        if frame["user"] == self.username:
            self._acked(frame["client_id"], seq)

    def _acked(self, client_id, message_id):
        if client_id == self.waiting_for:
            self.waiting_for = None
        if client_id in self.outbox:
            del self.outbox[client_id]
            self.transmitted.pop(client_id, None)
            self.failures.pop(client_id, None)
            self.latencies.append(time.time() - self.sent_at[client_id])
            self.acked_times.append(time.time())
            self.acks[client_id] = message_id
            self.flush()  # the window moved on

    # ---- sending -------------------------------------------------------------------------------
    def send(self, text, client_id=None):
        client_id = client_id or uuid.uuid4().hex
        with self.lock:
            self.outbox[client_id] = text
            self.sent_at.setdefault(client_id, time.time())
        self.flush()
        return client_id

    def edit(self, message_id, text):
        """Queue an edit of one of this user's messages, sent like a message."""
        return self.send({"type": "edit", "id": message_id, "text": text})

    def delete(self, message_id):
        return self.send({"type": "delete", "id": message_id})

    def _transmit(self, client_id, change):
        ws = self.ws
        if ws is None:
            return
        with self.lock:
            self.unanswered[client_id] += 1
        frame = dict(change) if isinstance(change, dict) else {"type": "message", "text": change}
        frame["client_id"] = client_id
        try:
            ws.send(json.dumps(frame))
        except Exception:
            with self.lock:
                if self.ws is ws:
                    self.ws = None

    def flush(self):
        """Send the oldest unacked messages, at most WINDOW in flight, again after RESEND seconds."""
        now = time.time()
        with self.lock:
            if now < self.paused_until:
                return
            due = []
            order = list(self.outbox.items())
            if self.waiting_for in self.outbox:
                order.sort(key=lambda item: item[0] != self.waiting_for)  # stable: the rest keep their order
            for client_id, text in order[:WINDOW]:
                if now - self.transmitted.get(client_id, 0) > RESEND:
                    self.transmitted[client_id] = now
                    self.first_sent.setdefault(client_id, now)
                    due.append((client_id, text))
        for client_id, text in due:
            self._transmit(client_id, text)

    # ---- catching up ---------------------------------------------------------------------------
    def last_contiguous(self):
        with self.lock:
            last = 0
            while last + 1 in self.seen:
                last += 1
            return last

    def catch_up(self):
        resp = self.browser.get("/rooms/%s/messages?after=%d" % (self.room, self.last_contiguous()))
        if resp.status == 200:
            with self.lock:
                for frame in resp.json():
                    self._see(frame)

    def settle(self, timeout=60):
        """Resend and reconnect until every message is acked, then catch up; False on timeout."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.ensure():
                if not self.outbox:
                    self.catch_up()
                    return True
                self.flush()
            time.sleep(1.0)
        return False

    def view(self):
        """The room's stream as the user received it: by seq, each entry once."""
        with self.lock:
            return [self.seen[i] for i in sorted(self.seen)]

    def current(self):
        return current(self.view())


# The frames of a room's stream, each with its place `seq` (a message's id is its seq).
STREAM = ("message", "edit", "delete")


def current(entries):
    """{message id: (text, deleted)} as a page shows them after applying `entries` (by seq): a
    message frame carries its state as of `rev`, an edit or delete applies when newer."""
    state = {}
    for frame in entries:
        seq = frame.get("seq", frame["id"])
        if frame["type"] == "message":
            known = state.get(frame["id"])
            if known is None or known[2] < frame.get("rev", 0):
                state[frame["id"]] = (frame["text"], frame.get("deleted", False), frame.get("rev", 0))
        elif frame["id"] in state and state[frame["id"]][2] < seq:
            state[frame["id"]] = ("", True, seq) if frame["type"] == "delete" else (frame["text"], False, seq)
    return {message_id: known[:2] for message_id, known in state.items()}

"""Continuous chat load for the fault suite: WebSocket chatters and long-poll readers in a room, and
the exactly-once accounting after each event."""
import json
import threading
import time
import uuid

from harness.client import Browser
from harness.stats import percentile

from .chatter import Chatter, current


class PollReader(object):
    """A user without WebSockets: long-polls the room in a loop, remembering every id it got."""

    def __init__(self, site_url, room):
        self.browser = Browser(site_url).signup("p%s" % uuid.uuid4().hex[:10])
        self.room = room
        self.seen = {}
        self.errors = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def last(self):
        last = 0
        while last + 1 in self.seen:
            last += 1
        return last

    def run(self):
        while not self.stop.is_set():
            try:
                resp = self.browser.get("/poll/rooms/%s/?after=%d" % (self.room, self.last()), timeout=40)
            except OSError:  # daphne restarting, connection reset: poll again
                resp = None
            if resp is None or resp.status != 200:
                self.errors += 1
                time.sleep(0.5)
                continue
            for frame in resp.json():
                self.seen.setdefault(frame.get("seq", frame["id"]), frame)

    def view(self):
        return [self.seen[i] for i in sorted(self.seen)]

    def current(self):
        return current(self.view())


class Load(object):
    """`chatters` users sending every `interval` seconds and `pollers` long-poll readers, in one new room."""

    def __init__(self, site, room, chatters=10, pollers=2, interval=0.5):
        self.site = site
        self.room = room
        self.interval = interval
        self.people = [Chatter(site.url, "c%s" % uuid.uuid4().hex[:10], room).connect()
                       for _ in range(chatters)]
        self.pollers = [PollReader(site.url, room) for _ in range(pollers)]
        self.sent = []
        self.event_started = None  # set by mark(): recovery is measured from there
        self.stop = threading.Event()
        self.threads = []

    def start(self):
        for poller in self.pollers:
            poller.thread.start()
        for person in self.people:
            thread = threading.Thread(target=self._talk, args=(person,), daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def _talk(self, person):
        """Send a message every interval; now and then edit or delete one of one's acked ones (each
        message at most once deleted, never edited after), so edits and deletes go through the
        event as messages do."""
        n = 0
        mine = []  # client_ids of this person's messages
        while not self.stop.is_set():
            person.ensure()  # a dropped socket reconnects, resends and catches up
            acked = [client_id for client_id in mine if client_id in person.acks]
            if n % 5 == 3 and acked:
                self.sent.append(person.edit(person.acks[acked[-1]], "%s #%d edited" % (person.username, n)))
            elif n % 7 == 6 and acked:
                mine.remove(acked[0])
                self.sent.append(person.delete(person.acks[acked[0]]))
            else:
                mine.append(person.send("%s #%d" % (person.username, n)))
                self.sent.append(mine[-1])
            n += 1
            person.flush()
            self.stop.wait(self.interval)

    def mark(self):
        """The event starts now."""
        self.event_started = time.time()

    def recovery(self):
        """Seconds from the event's start without a single ack: the longest such gap after it."""
        if self.event_started is None:
            return 0.0
        times = sorted(t for p in self.people for t in p.acked_times if t >= self.event_started)
        points = [self.event_started] + times
        return max(b - a for a, b in zip(points, points[1:])) if times else float("inf")

    def finish(self, timeout=120):
        """Stop sending, let every client resend and catch up, stop the readers; the tally."""
        self.stop.set()
        for thread in self.threads:
            thread.join()
        unsettled = [p.username for p in self.people if not p.settle(timeout)]
        deadline = time.time() + timeout
        total = len(self.stored())
        for poller in self.pollers:
            while poller.last() < total and time.time() < deadline:
                time.sleep(0.2)
            poller.stop.set()
        for person in self.people:
            person.close()
        return self.tally(unsettled)

    def stored(self):
        out = self.site.shell(
            "import json; from chat.models import Message; print(json.dumps(list(Message.objects.filter("
            "room__slug=%r).order_by('seq').values_list('seq', 'client_id'))))" % self.room)
        return [tuple(row) for row in json.loads(out)]

    def current(self):
        out = self.site.shell(
            "import json; from chat.models import Message; print(json.dumps(list(Message.objects.said().filter("
            "room__slug=%r).values_list('seq', 'text', 'deleted'))))" % self.room)
        return {seq: (text, deleted) for seq, text, deleted in json.loads(out)}

    def tally(self, unsettled):
        rows = self.stored()
        stored_ids = [client_id for _, client_id in rows]
        acked = set()
        for person in self.people:
            acked.update(person.acks)
        expected = [(seq, client_id) for seq, client_id in rows]
        readers = self.people + self.pollers
        viewers = [[(f.get("seq", f["id"]), f["client_id"]) for f in p.view()] for p in readers]
        delivered = sum(len(set(v) & set(expected)) for v in viewers)
        lost = sum(len(set(expected) - set(v)) for v in viewers)
        latencies = [lat for p in self.people for lat in p.latencies]
        return {
            "sent": len(set(self.sent)),
            "acked": len(acked & set(self.sent)),
            "stored": len(rows),
            "delivered": delivered,
            "duplicated": len(stored_ids) - len(set(stored_ids)),
            "lost": lost + len(acked - set(stored_ids)),
            "out_of_order": sum(1 for v in viewers if v != sorted(v)),
            "gapless": [seq for seq, _ in rows] == list(range(1, len(rows) + 1)),
            "views_equal_store": all(v == expected for v in viewers),
            # every message as each reader shows it (text, deleted) equals its stored state
            "current_equal_store": all(p.current() == self.current() for p in readers),
            "reconnects": sum(p.reconnects for p in self.people),
            # of which the clients gave up a silent or stuck socket themselves (the server did not close it)
            "gave_up": sum(p.gave_up for p in self.people),
            "p99_ms": 1000 * percentile(latencies, 0.99),
            "p50_ms": 1000 * percentile(latencies, 0.50),
            "unsettled": unsettled,
            "poll_errors": sum(p.errors for p in self.pollers),
            "recovery_s": self.recovery(),
        }


def under_load(site, room, event, label, chatters=10, pollers=2, before=3.0):
    """Run `event(site)` while `chatters` talk and `pollers` read in `room`: the tally (its row added
    to the table) after the exactly-once check."""
    load = Load(site, room, chatters=chatters, pollers=pollers).start()
    time.sleep(before)
    started = time.time()
    load.mark()
    try:
        event(site)
    finally:
        result = load.finish()
    result.update(event=label, seconds=time.time() - started)
    RESULTS.append(result)
    check(result)
    return result


def check(result):
    """The exactly-once contract after an event."""
    assert not result["unsettled"], "unacked messages left: %s" % result["unsettled"]
    assert result["acked"] == result["sent"] == result["stored"], result
    assert result["duplicated"] == 0 and result["lost"] == 0, result
    assert result["gapless"] and result["views_equal_store"] and not result["out_of_order"], result
    assert result["current_equal_store"], result


# Rows of the fault suite's table, printed at the end of the run (tests/conftest.py).
RESULTS = []
COLUMNS = ("event", "sent", "acked", "delivered", "duplicated", "lost", "reconnects", "p50_ms", "p99_ms",
           "recovery_s")


def table(rows):
    lines = ["%-36s %6s %6s %9s %10s %5s %10s %8s %8s %10s" % COLUMNS]
    for row in rows:
        lines.append("%-36s %6d %6d %9d %10d %5d %10d %8.1f %8.1f %10.1f" % tuple(
            row.get(column, 0) for column in COLUMNS))
    return "\n".join(lines)

"""Staged rollout of a release to the worker pools through supervisord's XML-RPC API.

Canaries first, judged by the counters the workers publish themselves (ops.health), then batches;
an abort points `current` back and restarts everything already moved.
"""
import collections
import functools
import operator
import subprocess
import sys
import time
import xmlrpc.client

from django.conf import settings
from django.db.models import Q

from . import releases, supervisor
from .models import WorkerStats

POOLS = ("default", "background", "realtime")

Host = collections.namedtuple("Host", "name rpc identity")
Host.__doc__ = """A supervisord whose workers a rollout moves: its `rpc` (the .supervisor namespace) and the
`identity` its workers' health rows carry."""


def worker_hosts():
    """Every worker host's supervisord over XML-RPC (CHAT_WORKER_HOSTS, in that order: the first
    gets the canaries), or this machine's over its Unix socket."""
    network = settings.CHAT_NETWORK
    if network.worker_hosts:
        return [Host(address, xmlrpc.client.ServerProxy(url).supervisor, address) for address, url in
                network.supervisor_urls("chat", settings.CHAT_SUPERVISOR_PASSWORD).items()]
    return [Host("", supervisor.connect(settings.CHAT_PATHS.supervisor_socket).supervisor, network.identity)]


class RolloutAborted(Exception):
    """The rollout stopped and was rolled back; the message says why."""


class Totals(object):
    """consumed / errors / busy seconds summed over some workers."""

    def __init__(self, rows=()):
        self.consumed = self.errors = 0
        self.busy = 0.0
        for row in rows:
            self.consumed += row.consumed
            self.errors += row.errors
            self.busy += row.busy_seconds

    def minus(self, earlier):
        delta = Totals()
        delta.consumed = self.consumed - earlier.consumed
        delta.errors = self.errors - earlier.errors
        delta.busy = self.busy - earlier.busy
        return delta

    @property
    def error_rate(self):
        return self.errors / self.consumed if self.consumed else 0.0

    @property
    def mean_ms(self):
        return 1000.0 * self.busy / self.consumed if self.consumed else 0.0

    def __str__(self):
        return "%d messages, %d errors (%.1f%%), %.1f ms mean" % (
            self.consumed, self.errors, 100 * self.error_rate, self.mean_ms)


# Messages the old workers of a pool handled in the window while its canary handled none: past this,
# the canary is not taking its share (a release that breaks the consumer before it counts, or a
# worker stuck before its first receive), not merely idle.
SILENT_CANARY = 20


def verdict(pool, canary, old, max_error_rate, max_latency_ratio, beside=True):
    """Why the canary's Totals in the window fail against the old workers' (beside: the old
    workers' in the same window; else the pool's record before the rollout), as RolloutAborted's
    text; None when it passes."""
    if canary.consumed and canary.error_rate > max(max_error_rate, 2 * old.error_rate):
        return "%s canary error rate %.1f%% (old %.1f%%, limit %.1f%%)" % (
            pool, 100 * canary.error_rate, 100 * old.error_rate, 100 * max_error_rate)
    if canary.consumed and old.consumed and canary.mean_ms > 5.0 and \
            canary.mean_ms > max_latency_ratio * old.mean_ms:
        return "%s canary handles a message in %.1f ms, %.1fx the old %.1f ms" % (
            pool, canary.mean_ms, canary.mean_ms / old.mean_ms, old.mean_ms)
    if not canary.consumed and beside and old.consumed >= SILENT_CANARY:
        return "%s canary handled no message while the old workers handled %d" % (pool, old.consumed)
    return None


def stats_for(procs):
    """The totals of these processes (supervisord's infos, with their "host")."""
    procs = list(procs)
    if not procs:
        return Totals()
    return Totals(WorkerStats.objects.live().filter(functools.reduce(
        operator.or_, (Q(host=p["host"].identity, pid=p["pid"]) for p in procs))))


class Rollout(object):
    """Move `pools` to `release`: `canary` workers per pool, watched for `window` seconds, then
    the rest `batch` at a time."""

    def __init__(self, hosts, release, pools=POOLS, canary=1, window=20.0, batch=1,
                 max_error_rate=0.02, max_latency_ratio=3.0, dry_run=False, out=print):
        self.hosts = hosts
        self.release = release
        self.pools = pools
        self.canary = canary
        self.window = window
        self.batch = batch
        self.max_error_rate = max_error_rate
        self.max_latency_ratio = max_latency_ratio
        self.dry_run = dry_run
        self.out = out
        self.moved = []  # (host, full name) of the processes restarted on the new release

    def processes(self, pool):
        """The pool's processes on every host, the first host's first; each info names its "host"."""
        found = []
        for host in self.hosts:
            for info in sorted(host.rpc.getAllProcessInfo(), key=lambda i: i["name"]):
                if info["group"] == pool:
                    info["host"] = host
                    found.append(info)
        return found

    @staticmethod
    def label(proc):
        return "%s%s" % (proc["host"].name + " " if proc["host"].name else "", proc["name"])

    def run(self):
        """True when every pool runs the release; RolloutAborted after a rollback."""
        target = releases.path(self.release)
        old_name, old_dir = releases.current()
        plan = {pool: self.processes(pool) for pool in self.pools}
        self.out("Rollout %s -> %s: pools %s, %d canary per pool watched %gs, then batches of %d" % (
            old_name, self.release, ", ".join(self.pools), self.canary, self.window, self.batch))
        for pool, procs in plan.items():
            names = [self.label(p) for p in procs]
            self.out("  %s: canary %s; then %s" % (pool, ", ".join(names[:self.canary]) or "-",
                                                   ", ".join(names[self.canary:]) or "-"))
        if self.dry_run:
            self.out("Dry run: nothing changed.")
            return True
        self.check_release(target)
        releases.point_current_at(target)
        try:
            for pool, procs in plan.items():
                self.roll_pool(pool, procs)
        except RolloutAborted as reason:
            self.out("ABORT: %s" % reason)
            self.rollback(old_dir, old_name)
            raise
        self.out("Done: %s runs %s." % (", ".join(self.pools), self.release))
        return True

    def check_release(self, target):
        """The new code must at least import and pass Django's checks before any worker gets it."""
        result = subprocess.run([sys.executable, "manage.py", "check"], cwd=target,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                universal_newlines=True)
        if result.returncode != 0:
            last = result.stdout.strip().splitlines()[-1:] or ["no output"]
            raise RolloutAborted("release %s fails `manage.py check`: %s" % (self.release, last[0]))

    def roll_pool(self, pool, procs):
        if not procs:
            return
        before = stats_for(procs)  # the old code's lifetime record
        canaries, rest = procs[:self.canary], procs[self.canary:]
        canary_procs = [self.restart(pool, p) for p in canaries]
        self.judge(pool, before, canary_procs, rest)
        for start in range(0, len(rest), self.batch):
            batch = rest[start:start + self.batch]
            for proc in batch:
                self.restart(pool, proc)
            self.settle(pool, batch)

    def restart(self, pool, proc):
        """SIGTERM (a busy worker finishes its consumer first), then start on the new release; the
        new process's info."""
        full, rpc = "%s:%s" % (pool, proc["name"]), proc["host"].rpc
        self.moved.append((proc["host"], full))
        rpc.stopProcess(full, True)
        rpc.startProcess(full, True)
        info = rpc.getProcessInfo(full)
        info["host"] = proc["host"]
        self.out("  %s: %s restarted (pid %d -> %d)" % (pool, self.label(proc), proc["pid"], info["pid"]))
        return info

    def judge(self, pool, before, canary_procs, old_procs):
        """Watch the canaries for the window and compare them with the old workers. A canary that
        handled nothing beside busy old workers is watched for one more window (one still starting
        up on a loaded machine) before it is stopped."""
        start_canary = stats_for(canary_procs)
        start_old = stats_for(old_procs)
        for watch in (1, 2):
            self.out("  %s: watching the canary for %gs..." % (pool, self.window))
            deadline = time.time() + self.window
            while time.time() < deadline:
                time.sleep(min(1.0, max(0.0, deadline - time.time())))
                self.alive(pool, canary_procs)
            canary = stats_for(canary_procs).minus(start_canary)
            old = stats_for(old_procs).minus(start_old) if old_procs else before
            self.out("  %s: canary %s | old %s" % (pool, canary, old))
            why = verdict(pool, canary, old, self.max_error_rate, self.max_latency_ratio, beside=bool(old_procs))
            if not why or canary.consumed or watch == 2:
                break
        if why:
            raise RolloutAborted(why)
        if not canary.consumed:
            self.out("  %s: the canary saw no traffic in the window; judged on staying up only" % pool)

    def alive(self, pool, procs):
        running = {(i["host"].name, i["pid"]) for i in self.processes(pool) if i["statename"] == supervisor.RUNNING}
        dead = [self.label(p) for p in procs if (p["host"].name, p["pid"]) not in running]
        if dead:
            raise RolloutAborted("%s canary %s stopped running" % (pool, ", ".join(dead)))

    def settle(self, pool, batch):
        time.sleep(2.0)
        names = {(p["host"].name, p["name"]) for p in batch}
        for info in self.processes(pool):
            if (info["host"].name, info["name"]) in names and info["statename"] != supervisor.RUNNING:
                raise RolloutAborted("%s:%s is %s after its restart" % (pool, self.label(info), info["statename"]))

    def rollback(self, old_dir, old_name):
        releases.point_current_at(old_dir)
        self.out("Rolling back to %s: restarting %s" % (old_name, ", ".join(
            "%s%s" % (host.name + " " if host.name else "", full) for host, full in self.moved) or "nothing"))
        for host, full in self.moved:
            try:
                host.rpc.stopProcess(full, True)
            except xmlrpc.client.Fault:  # not running (it crashed): just start it
                pass
            host.rpc.startProcess(full, True)
        self.out("Rolled back: every moved worker runs %s again." % old_name)

"""`make bench`: start each configuration of the real deployment, drive it with bench/loadgen.py
(and wrk), and write bench/results/<date>.json, PNG plots and BENCHMARKS.md.

Runs in the project's virtualenv as `python -m bench.run` (it starts deployments with the tests'
harness); the load generator runs in bench/venv on a modern Python.
"""
import argparse
import contextlib
import datetime
import json
import os
import platform
import queue
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from harness.client import Browser
from harness.servers import REPO, RedisServer, free_port, port_open, wait_for
from harness.sites import ClusterSite, PaasSite, Site
from harness.stats import summary

HERE = os.path.dirname(os.path.abspath(__file__))

LOADGEN = [os.path.join(HERE, "venv", "bin", "python"), os.path.join(HERE, "loadgen.py")]
PEER_PYTHON = os.path.join(HERE, "peer-venv", "bin", "python")
BENCH_ENV = {
    # The chat's per-socket rate limit would be the bottleneck of a load test, not the stack.
    "CHAT_RATE_BURST": "100000", "CHAT_RATE_PER_SECOND": "100000",
    "CHAT_PRESENCE_BROADCAST_MAX": "0",  # fan-out rooms measure messages, not presence storms
    "CHAT_LOG_LEVEL": "warning",
}


def progress(text):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), text), flush=True)


def cpu_seconds(pid):
    """User + system CPU a process used so far (0 if it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))


def speed_probe():
    """ms for a fixed piece of pure-Python work (the best of five): how fast this shared machine is
    at the moment. Its speed drifts by up to 2x within the hour; a run's rows compare to each
    other, and to another run's only through this."""
    best = None
    for _ in range(5):
        started = time.perf_counter()
        total = 0
        for n in range(300000):
            total += n % 7
        elapsed = 1000 * (time.perf_counter() - started)
        best = elapsed if best is None else min(best, elapsed)
    return best


def process_pids(site):
    """[(process group, pid)] of a deployment; nginx's workers (its children) count with it."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as stat:
                    children.setdefault(int(stat.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry))
            except OSError:
                pass
    return [(i["group"], pid) for i in site.processes() if i["pid"]
            for pid in [i["pid"]] + children.get(i["pid"], [])]


def cpu_per_unit(pids, before, count):
    """{process group: CPU ms per unit of work} since `before`, for the groups that spent any."""
    spent = {}
    for group, pid in pids:
        spent[group] = spent.get(group, 0.0) + cpu_seconds(pid) - before[pid]
    return {group: 1000.0 * seconds / max(1, count) for group, seconds in spent.items() if seconds > 0}


def open_files(pid):
    """Descriptors a process holds (0 if it is gone): a daphne's sockets, less its baseline."""
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return 0


def rss_mb(pid):
    """Resident memory of a process, MiB."""
    with open("/proc/%d/status" % pid) as status:
        return int(re.search(r"VmRSS:\s+(\d+)", status.read()).group(1)) / 1024.0


# Sockets per load generator process: below the 20,000 descriptors a process may hold, with room.
SOCKETS_PER_PROCESS = 9000


class Crowd(object):
    """The `sockets` scenario's load generator processes: `members` sockets to one room spread over
    enough processes (SOCKETS_PER_PROCESS each) and loopback source addresses (127.0.0.2, .3, ...:
    one address has ~28,000 ephemeral ports towards one server), each driven by lines on its stdin
    and answering in JSON lines, read by a thread per process."""

    def __init__(self, workdir, url, users, room, members, concurrency):
        count = max(1, -(-members // SOCKETS_PER_PROCESS))
        self.procs, self.queues = [], []
        self.err_path = os.path.join(workdir, "crowd-%s.err" % uuid.uuid4().hex[:6])
        with open(self.err_path, "w") as err:
            for i in range(count):
                share = members // count + (1 if i < members % count else 0)
                proc = subprocess.Popen(
                    LOADGEN + ["sockets", "--url", url, "--users", users, "--room", room, "--members", str(share),
                               "--source", "127.0.0.%d" % (2 + i), "--concurrency", str(max(1, concurrency // count))],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, universal_newlines=True, bufsize=1)
                lines = queue.Queue()
                threading.Thread(target=self._pump, args=(proc, lines), daemon=True).start()
                self.procs.append(proc)
                self.queues.append(lines)

    @staticmethod
    def _pump(proc, lines):
        for line in proc.stdout:
            lines.put(json.loads(line))
        lines.put(None)  # the process is gone

    def event(self, index, name, timeout):
        """The next line of process `index` that is event `name` (others are dropped)."""
        deadline = time.time() + timeout
        while True:
            try:
                line = self.queues[index].get(timeout=max(0.01, deadline - time.time()))
            except queue.Empty:
                raise RuntimeError("the load generator gave no %r within %d s" % (name, timeout))
            if line is None:
                with open(self.err_path) as err:
                    raise RuntimeError("a load generator exited: %s" % err.read()[-1500:])
            if line.get("event") == name:
                return line

    def tell(self, line, indexes=None):
        for index in range(len(self.procs)) if indexes is None else indexes:
            self.procs[index].stdin.write(line + "\n")
            self.procs[index].stdin.flush()

    def ask(self, line, name, timeout=60):
        """Every process's answer to a line."""
        self.tell(line)
        return [self.event(i, name, timeout) for i in range(len(self.procs))]

    def broadcast(self, timeout):
        """One chat message sent from a socket of the first process: (ms from the send until the
        last member had it, members that did not have it within `timeout` s)."""
        text = "bcast-%s" % uuid.uuid4().hex[:12]
        self.tell("wait %s %d" % (text, timeout))
        time.sleep(0.2)  # every process is waiting before the send
        self.tell("send %s" % text, [0])
        sent = self.event(0, "sent", 30)["at"]
        arrived = [self.event(i, "arrived", timeout + 30) for i in range(len(self.procs))]
        missed = sum(a["expected"] - a["count"] for a in arrived)
        lasts = [a["last"] for a in arrived if a["last"] is not None]
        return (1000.0 * (max(lasts) - sent) if lasts and sent is not None else None), missed

    def close(self):
        for proc in self.procs:
            try:
                proc.stdin.write("quit\n")
                proc.stdin.flush()
            except OSError:
                pass
        for proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Bench(object):
    def __init__(self, quick, soak_seconds=600, socket_count=None):
        self.quick = quick
        self.soak_seconds = soak_seconds
        self.socket_count = socket_count or (2000 if quick else 20000)
        self.no_peer = False
        self.results = []
        self.workdir = tempfile.mkdtemp(prefix="chat-bench-")

    def loadgen(self, site, scenario, *args, timeout=600):
        cmd = LOADGEN + [scenario, "--url", site.url] + [str(a) for a in args]
        result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError("loadgen %s failed: %s" % (scenario, result.stderr[-2000:]))
        return json.loads(result.stdout)

    def users(self, site, count, rooms=True):
        """Sign up `count` users, each with a room of their own; a JSON file for the load generator."""
        out = []
        for n in range(count):
            browser = Browser(site.url).signup("b%s" % uuid.uuid4().hex[:10])
            out.append({"cookie": browser.cookie("sessionid"), "room": None})
        if rooms:
            slugs = ["bench-%s" % uuid.uuid4().hex[:10] for _ in out]
            # (a comprehension inside `shell -c` cannot see names the command imported)
            site.shell("import chat.models; chat.models.Room.objects.bulk_create("
                       "[__import__('chat.models').models.Room(slug=s, name=s) for s in %r])" % slugs)
            for user, slug in zip(out, slugs):
                user["room"] = slug
        path = os.path.join(self.workdir, "users-%s.json" % uuid.uuid4().hex[:6])
        with open(path, "w") as f:
            json.dump(out, f)
        return path

    def probe(self, config):
        ms = speed_probe()
        self.results.append({"config": config, "scenario": "machine speed probe", "probe_ms": ms})
        progress("%s: machine speed probe %.1f ms (lower is faster)" % (config, ms))

    def attempt(self, config, scenario, run):
        """Run one scenario; a failure is recorded (the stack gave up) and the bench goes on."""
        try:
            run()
        except Exception as exc:  # noqa: BLE001 - any failure of the system under test is a result
            self.results.append({"config": config, "scenario": scenario, "failed": str(exc)[-300:]})
            progress("  %-28s %-30s FAILED: %s" % (config, scenario, str(exc).strip().splitlines()[-1][:120]))

    def record(self, config, scenario, data, **extra):
        row = {"config": config, "scenario": scenario}
        row.update(extra)
        for key in ("latency_ms", "last_delivery_ms"):
            if key in data:
                row["summary"] = summary(data[key])
                row["samples"] = data[key]
        for key in ("messages_per_second", "achieved_rps", "errors", "missed", "requests_per_second"):
            if key in data:
                row[key] = data[key]
        self.results.append(row)
        s = row.get("summary", {})
        progress("  %-28s %-30s p50 %7.2f ms  p99 %7.2f ms  %s" % (
            config, scenario, s.get("p50", 0), s.get("p99", 0),
            " ".join("%s=%.1f" % (k, row[k]) for k in ("messages_per_second", "achieved_rps",
                                                       "requests_per_second", "missed", "errors")
                     if k in row)))

    def wrk(self, site, path):
        """Saturation: wrk with 64 connections for 10 s; requests/s and its latency percentiles."""
        out = subprocess.run(["wrk", "-t2", "-c64", "-d%ds" % (5 if self.quick else 10), "--latency",
                              site.url + path], stdout=subprocess.PIPE, universal_newlines=True).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        lat = {q: self._ms(re.search(r"\s%s%%\s+([\d.]+\w+)" % q, out).group(1)) for q in ("50", "99")}
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        return {"requests_per_second": rps, "p50": lat["50"], "p99": lat["99"],
                "errors": int(errors.group(1)) if errors else 0}

    @staticmethod
    def _ms(text):
        number, unit = re.match(r"([\d.]+)(\w+)", text).groups()
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    # ---- one configuration -----------------------------------------------------------------------

    def configuration(self, layer, flavor, workers, scenarios, daphne=None, label=None):
        """One deployment and its scenarios; daphne: the virtualenv daphne runs from (CHAT_INTERFACE_VENV;
        "" for the workers' own), else the default; label: added to the configuration's name."""
        config = "%s/%s/%dw" % (layer, flavor, workers) + ("/%s" % label if label else "")
        if daphne is not None:
            python = os.path.join(REPO, daphne, "bin", "python") if daphne else sys.executable
            config += "/daphne on %s" % os.path.basename(os.path.realpath(python))
        self.probe(config)
        progress("%s: starting the deployment" % config)
        env = dict(BENCH_ENV, CHAT_LAYER=layer, CHAT_LAYER_FLAVOR=flavor,
                   CHAT_WORKERS_REALTIME=str(workers), CHAT_GUNICORN_WORKERS="2")
        if daphne is not None:
            env["CHAT_INTERFACE_VENV"] = daphne
        site = Site(**env).start()
        try:
            time.sleep(2)
            self.round_trips(site, config, scenarios, lambda count: self.users(site, count))
            if "chat100" in scenarios:
                self.attempt(config, "chat, 100 clients/100 rooms", lambda: self.chat100(site, config))
            if "burn" in scenarios:
                self.attempt(config, "cpu-heavy consumer (5 ms)", lambda: self.record(
                    config, "cpu-heavy consumer (5 ms)",
                    self.loadgen(site, "burn", "--clients", 8, "--ms", 5, "--duration",
                                 5 if self.quick else 10)))
            if "fanout" in scenarios:
                for members in (100, 1000):
                    self.attempt(config, "fan-out to %d" % members,
                                 lambda: self.fanout(site, config, members))
            if "longpoll" in scenarios:
                self.attempt(config, "long-poll wake-up", lambda: self.longpoll(site, config))
            if "http" in scenarios:
                self.attempt(config, "pages", lambda: self.pages(site, config))
            if "memory" in scenarios:
                self.memory(site, config)
            if "sockets" in scenarios:
                self.attempt(config, "sockets", lambda: self.sockets(site, config))
        finally:
            site.close()

    def round_trips(self, site, config, scenarios, users):
        """One client sending and waiting: the raw echo and the chat round trip. users(count) is
        the path of a users file for the load generator."""
        n = 100 if self.quick else 300
        if "echo" in scenarios:
            self.attempt(config, "raw echo, 1 client", lambda: self.record(
                config, "raw echo, 1 client", self.loadgen(site, "echo", "--n", n)))
        if "echo-direct" in scenarios:
            # As the peer is reached: straight to a daphne (its Unix socket), nginx left out.
            self.attempt(config, "raw echo, 1 client, no nginx", lambda: self.record(
                config, "raw echo, 1 client, no nginx",
                self.loadgen(site, "echo", "--n", n, "--unix", site.paths.daphne_socket(0))))
        if "chat1" in scenarios:
            self.attempt(config, "chat round trip, 1 client", lambda: self.record(
                config, "chat round trip, 1 client",
                self.loadgen(site, "chat", "--users", users(1), "--n", n)))

    def chat100(self, site, config, pids=None, users=None):
        """100 clients chatting as fast as they can, and the CPU each kind of process (pids: [(kind,
        pid)], the deployment's by default) and the load generator spent per message meanwhile
        (where a message's cost goes on these two cores)."""
        users = users or self.users(site, 100)
        pids = pids or process_pids(site)
        before = {pid: cpu_seconds(pid) for _, pid in pids}
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        data = self.loadgen(site, "chat", "--users", users, "--duration", 5 if self.quick else 15,
                            "--warmup", 2)
        # the load generator's messages include its warm-up ones, at most 2 per client
        count = max(1, len(data["latency_ms"]))
        cpu = cpu_per_unit(pids, before, count)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the load generator, a child that exited
        cpu["load generator"] = 1000.0 * (after.ru_utime + after.ru_stime
                                          - children.ru_utime - children.ru_stime) / count
        self.record(config, "chat, 100 clients/100 rooms", data)
        self.results[-1]["cpu_ms_per_message"] = cpu
        progress("  %-28s CPU ms per message: %s" % (config, ", ".join(
            "%s %.2f" % item for item in sorted(cpu.items(), key=lambda item: -item[1]))))

    # The health check is the lightest view there is (one SELECT 1, ~0.14 ms of Django): the split
    # path's fixed cost shows at its largest. The login page (a template, a form, a CSRF cookie; ~1.4
    # ms of Django) is a plain page of the site, about the weight of the "plain page ~2 ms".
    PAGES = (("page", "/healthz"), ("login page", "/accounts/login/"))

    def pages(self, site, config):
        """The same view through gunicorn and through daphne + workers at 300 rps, then saturated.

        The fixed-rate runs alternate between the two paths in short rounds, so that both see the
        same moments of this shared machine (its speed drifts by tens of percent within minutes);
        the ratio quoted is the median of the rounds' ratios of p50s."""
        rounds, seconds = (2, 3) if self.quick else (5, 4)
        paths = (("gunicorn", ""), ("daphne+workers", "/daphne"))
        for page, path in self.PAGES:
            runs = {label: [] for label, _ in paths}
            spent = {label: {} for label, _ in paths}
            for _ in range(rounds):
                for label, prefix in paths:
                    pids = process_pids(site)
                    before = {pid: cpu_seconds(pid) for _, pid in pids}
                    data = self.loadgen(site, "http", "--path", prefix + path, "--rate", 300,
                                        "--duration", seconds)
                    runs[label].append(data)
                    for group, ms in cpu_per_unit(pids, before, len(data["latency_ms"])).items():
                        spent[label][group] = spent[label].get(group, 0.0) + ms / rounds
            for label, _ in paths:
                self.record(config, "%s via %s at 300 rps" % (page, label), {
                    "latency_ms": [v for data in runs[label] for v in data["latency_ms"]],
                    "achieved_rps": statistics.mean(data["achieved_rps"] for data in runs[label]),
                    "errors": sum(data["errors"] for data in runs[label])},
                    cpu_ms_per_request=spent[label])
                progress("  %-28s CPU ms per request: %s" % (config, ", ".join(
                    "%s %.2f" % item for item in sorted(spent[label].items(), key=lambda item: -item[1])
                    if item[1] >= 0.01)))
            ratios = [summary(d["latency_ms"])["p50"] / summary(g["latency_ms"])["p50"]
                      for g, d in zip(runs["gunicorn"], runs["daphne+workers"])
                      if g["latency_ms"] and d["latency_ms"]]
            if ratios:
                self.results.append({"config": config, "scenario": "%s at 300 rps, p50 ratio" % page,
                                     "round_ratios": ratios, "ratio": statistics.median(ratios)})
                progress("  %-28s %s at 300 rps: daphne+workers p50 = %.2fx gunicorn's (median of "
                         "%d rounds: %s)" % (config, page, statistics.median(ratios), len(ratios),
                                             " ".join("%.2f" % r for r in ratios)))
            for label, prefix in paths:
                data = self.wrk(site, prefix + path)
                scenario = "%s via %s, saturation" % (page, label)
                self.results.append({"config": config, "scenario": scenario,
                                     "requests_per_second": data["requests_per_second"],
                                     "summary": {"p50": data["p50"], "p99": data["p99"]},
                                     "errors": data["errors"]})
                progress("  %-28s %-30s %.0f req/s p50 %.1f ms p99 %.1f ms" % (
                    config, scenario, data["requests_per_second"], data["p50"], data["p99"]))

    SHAPES = ("split", "asgi", "inverse", "paas")

    def shapes(self):
        """What a page costs in each shape of the Deploying guide, at its plain URL (the health check
        and the login page at 300 rps): split (gunicorn), asgi (daphne + workers), inverse (daphne +
        workers, /accounts/ by gunicorn), and the Procfile's daphne alone on its port (no nginx).
        All four run at once, loaded one at a time, alternating in short rounds."""
        rounds, seconds = (2, 3) if self.quick else (5, 4)
        env = dict(BENCH_ENV, CHAT_LAYER="redis", CHAT_GUNICORN_WORKERS="2")
        sites = {}
        try:
            for shape in self.SHAPES:
                progress("shapes: starting the %s shape" % shape)
                sites[shape] = (PaasSite(**env) if shape == "paas" else Site(CHAT_TOPOLOGY=shape, **env)).start()
            time.sleep(2)
            self.probe("shapes")
            for page, path in self.PAGES:
                runs = {shape: [] for shape in self.SHAPES}
                for _ in range(rounds):
                    for shape in self.SHAPES:
                        runs[shape].append(self.loadgen(sites[shape], "http", "--path", path, "--rate", 300,
                                                        "--duration", seconds))
                for shape in self.SHAPES:
                    self.record("shapes: redis/tuned/2w", "%s in the %s shape at 300 rps" % (page, shape), {
                        "latency_ms": [v for data in runs[shape] for v in data["latency_ms"]],
                        "achieved_rps": statistics.mean(data["achieved_rps"] for data in runs[shape]),
                        "errors": sum(data["errors"] for data in runs[shape])})
        finally:
            for site in sites.values():
                site.close()

    def cluster(self):
        """`make cluster` (ten hosts in network namespaces, on these same two cores) in both layouts,
        beside one machine on Redis in the same minutes: what the network hops cost, and the CPU
        each role spends per chat message (docs/scaling.md sizes hosts from it)."""
        if os.geteuid() != 0:
            progress("cluster: skipped (network namespaces need root)")
            return
        self.configuration("redis", "tuned", 2, ["echo", "chat1", "chat100"])
        for layout in ("sharded", "sentinel"):
            config = "cluster/%s" % layout
            self.probe(config)
            progress("%s: starting the cluster" % config)
            site = ClusterSite(layout, **dict(BENCH_ENV, CHAT_GUNICORN_WORKERS="2")).start()
            try:
                time.sleep(2)
                self.round_trips(site, config, ["echo", "chat1"], lambda count: self.users(site, count))
                self.attempt(config, "chat, 100 clients/100 rooms", lambda: self.chat100(site, config))
                self.attempt(config, "fan-out to 1000", lambda: self.fanout(site, config, 1000))
            finally:
                site.close()

    def sockets(self, site, config):
        """Issue 16's targets 3 and 4 on the deployment: socket_count sockets in one room (open, a
        broadcast to all, memory per socket), then one daphne killed under them (the reconnect storm)."""
        users = self.users(site, 10, rooms=False)
        room = "crowd-%s" % uuid.uuid4().hex[:8]
        site.shell("from chat.models import Room; Room.objects.create(slug=%r, name=%r)" % (room, room))
        self.crowd(config, site.url, users, room, lambda: process_pids(site), storm=True, timeout=30)

    def crowd(self, config, url, users, room, pids_of, storm, timeout):
        """Open socket_count sockets to a room (hundreds of handshakes at once) and record: how many
        were accepted, how fast, what failed; RSS per socket summed over held_by()'s processes
        (pids_of(): [(group, pid)] of every process; the nginx and daphne ones count), and the CPU
        each group spent per accepted handshake; 5 broadcasts to every member; with `storm`, the
        daphne holding the most sockets SIGKILLed (supervisord restarts it) while every client comes
        back with the page's backoff: how long until all are back, and whether any socket of the
        other daphne closed (the clients count every close; the survivor's descriptors are sampled)."""
        members = self.socket_count
        every = pids_of()
        held = [(group, pid) for group, pid in every if group in ("nginx", "daphne")]
        cpu_before = {pid: cpu_seconds(pid) for _, pid in every}
        rss_before = {pid: rss_mb(pid) for _, pid in held}
        daphnes = [pid for group, pid in held if group == "daphne"]
        fds_before = {pid: open_files(pid) for pid in daphnes}
        progress("  %-28s opening %d sockets" % (config, members))
        crowd = Crowd(self.workdir, url, users, room, members, concurrency=400)
        try:
            opened = [crowd.event(i, "opened", 1800) for i in range(len(crowd.procs))]
            accepted = sum(o["accepted"] for o in opened)
            failures = {}
            for o in opened:
                for kind, count in o["failures"].items():
                    failures[kind] = failures.get(kind, 0) + count
            seconds = max(o["finished"] for o in opened) - min(o["started"] for o in opened)
            cpu = cpu_per_unit(every, cpu_before, accepted)
            self.results.append({"config": config, "scenario": "sockets: open %d" % members, "members": members,
                                 "cpu_ms_per_handshake": cpu, "load_average": os.getloadavg(),
                                 "accepted": accepted, "failures": failures, "seconds": seconds,
                                 "processes": len(crowd.procs),
                                 "handshake_p50_ms": statistics.median(o["handshake_p50_ms"] for o in opened),
                                 "handshake_max_ms": max(o["handshake_max_ms"] for o in opened)})
            progress("  %-28s sockets: %d of %d accepted in %.1f s (%.0f/s), failures %s; CPU ms per "
                     "handshake: %s" % (config, accepted, members, seconds, accepted / max(seconds, 0.001),
                                        failures or "none", ", ".join("%s %.2f" % item for item in sorted(
                                            cpu.items(), key=lambda item: -item[1]))))
            time.sleep(5)  # settled: handshakes' buffers returned
            rss_after = {pid: rss_mb(pid) for _, pid in held}
            per_group = {}
            for group, pid in held:
                per_group[group] = per_group.get(group, 0.0) + rss_after[pid] - rss_before[pid]
            kib = {group: 1024.0 * mb / max(1, accepted) for group, mb in per_group.items()}
            sockets_per_daphne = {str(pid): open_files(pid) - fds_before[pid] for pid in daphnes}
            self.results.append({"config": config, "scenario": "sockets: RSS per idle socket",
                                 "kib_per_socket": sum(kib.values()), "kib_by_group": kib,
                                 "rss_before_mb": sum(rss_before.values()), "rss_after_mb": sum(rss_after.values()),
                                 "sockets": accepted, "sockets_per_daphne": sockets_per_daphne})
            progress("  %-28s RSS per idle socket %.1f KiB (%s); sockets per daphne %s" % (
                config, sum(kib.values()), ", ".join("%s %.1f" % item for item in sorted(kib.items())),
                sorted(sockets_per_daphne.values())))
            delivered, missed = [], 0
            for _ in range(5):
                ms, lost = crowd.broadcast(timeout)
                delivered.append(ms)
                missed += lost
                time.sleep(1)
            self.record(config, "sockets: broadcast to %d" % accepted,
                        {"last_delivery_ms": delivered, "missed": missed})
            if storm and len(daphnes) > 1:
                self.storm(config, crowd, daphnes, fds_before, timeout)
        finally:
            crowd.close()

    def storm(self, config, crowd, daphnes, fds_before, timeout):
        """SIGKILL the daphne holding the most sockets; every client reconnects with the page's
        backoff and jitter. Time from the kill until every socket is open again; closes the
        clients saw (all the victim's, none of the other daphnes'); then a broadcast to all."""
        held = {pid: open_files(pid) - fds_before[pid] for pid in daphnes}
        victim = max(held, key=held.get)
        survivors = [pid for pid in daphnes if pid != victim]
        lowest = {pid: held[pid] for pid in survivors}
        open_before = sum(s["open"] for s in crowd.ask("status", "status"))
        crowd.ask("reconnect", "reconnecting")
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        progress("  %-28s killed daphne %d holding %d sockets (the others hold %s)" % (
            config, victim, held[victim], [held[pid] for pid in survivors]))
        status, timeline = [], []
        while time.monotonic() < killed_at + 180:
            time.sleep(0.5)
            for pid in survivors:
                lowest[pid] = min(lowest[pid], open_files(pid) - fds_before[pid])
            status = crowd.ask("status", "status")
            timeline.append((time.monotonic() - killed_at, sum(s["open"] for s in status)))
            if sum(s["closes"] for s in status) and sum(s["open"] for s in status) >= open_before:
                break
        back = [s["last_back"] for s in status if s["last_back"] is not None]
        closes = sum(s["closes"] for s in status)
        failures = {}
        for s in status:
            for kind, count in s["reconnect_failures"].items():
                failures[kind] = failures.get(kind, 0) + count
        row = {"config": config, "scenario": "sockets: reconnect storm", "victim_sockets": held[victim],
               "open_before": open_before, "open_after": sum(s["open"] for s in status),
               "seconds_to_all_back": (max(back) - killed_at) if back else None,
               "client_closes": closes, "other_closes": closes - held[victim],
               "survivor_sockets_before": [held[pid] for pid in survivors],
               "survivor_sockets_lowest": [lowest[pid] for pid in survivors],
               "reconnect_failures": failures, "timeline": timeline}
        time.sleep(2)
        ms, missed = crowd.broadcast(timeout)
        row.update(broadcast_after_ms=ms, missed_after=missed)
        self.results.append(row)
        progress("  %-28s storm: %d of %d back in %s s; closes %d (victim held %d); survivor lowest %s of %s; "
                 "retries %s; broadcast after: %s ms, missed %d" % (
                     config, row["open_after"], open_before,
                     "%.1f" % row["seconds_to_all_back"] if back else "-", closes, held[victim],
                     row["survivor_sockets_lowest"], row["survivor_sockets_before"], failures or "none",
                     "%.0f" % ms if ms is not None else "-", missed))

    def peer_sockets(self):
        """The same sockets, open and broadcast on the peer: one daphne 4 process (no storm: it has
        no second process to stay up), its RSS per socket."""
        config = "peer: channels4/redis"
        with self.peer_daphne(config) as (site, daphne):
            if site is not None:
                self.attempt(config, "sockets", lambda: self.crowd(
                    config, site.url, self.peer_users(1), "crowd-%s" % uuid.uuid4().hex[:8],
                    lambda: [("daphne", daphne.pid)], storm=False, timeout=120))

    def fanout(self, site, config, members):
        users = self.users(site, 10, rooms=False)
        room = "fan-%s" % uuid.uuid4().hex[:8]
        site.shell("from chat.models import Room; Room.objects.create(slug=%r, name=%r)" % (room, room))
        self.record(config, "fan-out to %d" % members,
                    self.loadgen(site, "fanout", "--users", users, "--room", room, "--members", members,
                                 "--messages", 5, timeout=900))

    def longpoll(self, site, config):
        users = self.users(site, 2)
        with open(users) as f:
            pair = json.load(f)
        pair[1]["room"] = pair[0]["room"]
        with open(users, "w") as f:
            json.dump(pair, f)
        self.record(config, "long-poll wake-up",
                    self.loadgen(site, "longpoll", "--users", users, "--room", pair[0]["room"],
                                 "--n", 20 if self.quick else 50))

    def memory(self, site, config):
        """RSS of each daphne and realtime worker of a fresh deployment: idle, while 1000 sockets
        are open, and sampled through a soak of steady chat (slope by least squares after the first
        fifth)."""
        procs = {i["name"]: i["pid"] for i in site.processes()
                 if i["group"] in ("daphne", "realtime") and i["pid"]}

        def sample():
            return {name: rss_mb(pid) for name, pid in procs.items()}
        idle = sample()
        holding, opened = {}, 0
        try:
            users = self.users(site, 10, rooms=False)
            room = "hold-%s" % uuid.uuid4().hex[:8]
            site.shell("from chat.models import Room; Room.objects.create(slug=%r, name=%r)" % (room, room))
            hold = subprocess.Popen(LOADGEN + ["hold", "--url", site.url, "--users", users, "--room", room,
                                               "--members", "1000", "--duration", "15"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
            if hold.stderr.readline().strip() == "ready":
                time.sleep(5)
                holding = sample()
            out, err = hold.communicate(timeout=300)
            opened = json.loads(out)["opened"] if hold.returncode == 0 else 0
        except Exception as exc:  # noqa: BLE001 - recorded, the bench goes on
            progress("  %-28s %-30s FAILED: %s" % (config, "1000 sockets", exc))
        for name in sorted(procs):
            self.results.append({"config": config, "scenario": "RSS %s" % name, "rss_mb": idle[name],
                                 "rss_1000_mb": holding.get(name), "sockets": opened})
            progress("  %-28s RSS %-26s idle %.1f MiB, with %d sockets open %s MiB" % (
                config, name, idle[name], opened,
                "%.1f" % holding[name] if name in holding else "-"))
        self.soak(site, config, sample)

    def soak(self, site, config, sample):
        seconds = 60 if self.quick else self.soak_seconds
        progress("  %-28s soak: 50 clients, 4 msg/s each, %d s" % (config, seconds))
        users = self.users(site, 50)
        # Output to files: a pipe nobody reads until the end would block the load generator.
        out_path, err_path = (os.path.join(self.workdir, "soak.%s" % k) for k in ("out", "err"))
        with open(out_path, "w") as out, open(err_path, "w") as err:
            load = subprocess.Popen(LOADGEN + ["chat", "--url", site.url, "--users", users, "--duration",
                                               str(seconds), "--interval", "0.25", "--warmup", "0"],
                                    stdout=out, stderr=err)
        started, series = time.time(), []
        while load.poll() is None:
            series.append((time.time() - started, sample()))
            for _ in range(30):
                if load.poll() is not None:
                    break
                time.sleep(0.5)
        with open(out_path) as out, open(err_path) as err:
            out, err = out.read(), err.read()
        if load.returncode != 0:
            progress("  %-28s soak FAILED: %s" % (config, err.strip().splitlines()[-1:]))
            return
        data = json.loads(out)
        steady = [point for point in series if point[0] >= seconds / 5.0]
        slopes = {}
        for name in series[0][1]:
            xs = [t / 60.0 for t, _ in steady]
            ys = [values[name] for _, values in steady]
            if len(xs) >= 3:
                mean_x, mean_y = statistics.mean(xs), statistics.mean(ys)
                slopes[name] = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / \
                    sum((x - mean_x) ** 2 for x in xs)
        self.results.append({"config": config, "scenario": "soak %d s" % seconds, "series": series,
                             "slope_mb_per_min": slopes, "summary": summary(data["latency_ms"]),
                             "messages_per_second": data["messages_per_second"],
                             "errors": data["errors"]})
        progress("  %-28s soak: %.0f msg/s, p50 %.1f ms; RSS slope MiB/min: %s" % (
            config, data["messages_per_second"], summary(data["latency_ms"]).get("p50", 0),
            ", ".join("%s %+.3f" % (k, v) for k, v in sorted(slopes.items()))))

    def peer(self, scenarios, label=None):
        """The same echo and chat on Channels 4 + daphne 4 + channels_redis (consumers in daphne's
        process), on its own Redis and SQLite (WAL). Straight to daphne on TCP: no nginx in front.
        label: added to the configuration's name."""
        config = "peer: channels4/redis" + ("/%s" % label if label else "")
        with self.peer_daphne(config) as (site, daphne):
            if site is None:
                return
            self.round_trips(site, config, scenarios, self.peer_users)
            if "chat100" in scenarios:
                self.attempt(config, "chat, 100 clients/100 rooms", lambda: self.chat100(
                    site, config, pids=site.pids, users=self.peer_users(100)))
            if "memory" in scenarios:
                self.results.append({"config": config, "scenario": "RSS daphne (consumers in it)",
                                     "rss_mb": rss_mb(daphne.pid)})

    @contextlib.contextmanager
    def peer_daphne(self, config):
        """The peer's daphne 4 on a free port with its own Redis and SQLite: (site, process), or
        (None, None) without bench/peer-venv."""
        if not os.path.exists(PEER_PYTHON):
            progress("%s: skipped (no bench/peer-venv: it needs python3 >= 3.10)" % config)
            yield None, None
            return
        self.probe(config)
        progress("%s: starting daphne 4" % config)
        redis_server = RedisServer().start()
        port = free_port()
        env = dict(os.environ, PEER_DB=os.path.join(self.workdir, "peer.sqlite3"),
                   PEER_REDIS_URL=redis_server.url, PYTHONDONTWRITEBYTECODE="1")
        cwd = os.path.join(HERE, "peer")
        daphne = None
        try:
            subprocess.run([PEER_PYTHON, "manage.py", "migrate", "-v0"], cwd=cwd, env=env, check=True)
            daphne = subprocess.Popen(
                [PEER_PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "peer.asgi:application"],
                cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(self.workdir, "peer-daphne.log"), "w"))
            wait_for(lambda: port_open(port), 30, "the peer's daphne on %d" % port)
            yield type("PeerSite", (), {"url": "http://127.0.0.1:%d" % port, "pids": [
                ("daphne", daphne.pid), ("redis", redis_server.process.pid)]})(), daphne
        finally:
            if daphne is not None:
                daphne.terminate()
                try:
                    daphne.wait(10)
                except subprocess.TimeoutExpired:  # still closing thousands of sockets
                    daphne.kill()
                    daphne.wait()
                with open(os.path.join(self.workdir, "peer-daphne.log")) as log:
                    errors = [line for line in log if "Error" in line]
                if errors:
                    progress("  the peer's daphne logged %d error lines, e.g. %s" % (
                        len(errors), errors[-1].strip()[:200]))
            redis_server.close()

    def peer_users(self, count):
        path = os.path.join(self.workdir, "peer-users-%s.json" % uuid.uuid4().hex[:6])
        with open(path, "w") as f:
            json.dump([{"cookie": None, "room": "peer-%s" % uuid.uuid4().hex[:10]}
                       for _ in range(count)], f)
        return path

    def run(self, only, keep=None):
        full = ["echo", "chat1", "chat100", "fanout", "longpoll", "http"]
        plan = [("redis", "upstream", 2, full), ("redis", "tuned", 2, full),
                ("ipc", "upstream", 2, full), ("ipc", "tuned", 2, full)]
        for workers in (1, 4):
            plan.append(("redis", "tuned", workers, ["chat1", "chat100", "burn"]))
            plan.append(("ipc", "tuned", workers, ["chat1", "chat100", "burn"]))
        plan.append(("redis", "tuned", 2, ["burn"]))
        plan.append(("ipc", "tuned", 2, ["burn"]))
        # Memory on fresh deployments of the tuned configurations: idle, 1000 sockets, the soak.
        plan.append(("redis", "tuned", 2, ["memory"]))
        plan.append(("ipc", "tuned", 2, ["memory"]))
        # Issue 16's 20,000 sockets in one room, then the peer with the same crowd (sockets()).
        plan.append(("redis", "tuned", 2, ["sockets"]))
        if not only or only in "peer":
            self.peer([s for s in ("echo", "chat1", "chat100", "memory") if not keep or s in keep])
        if (not only or only in "versus") and (not keep or "versus" in keep):
            # Issue 16's ratios to the peer: the peer and the Redis deployment alternating in one
            # run (the machine's speed drifts within minutes), echo, chat round trip, 100 clients.
            for round_number in range(1 if self.quick else 3):
                label = "versus %d" % (round_number + 1)
                self.peer(["echo", "chat1", "chat100"], label=label)
                self.configuration("redis", "tuned", 2, ["echo", "echo-direct", "chat1", "chat100"],
                                   label=label)
        if (not only or only in "shapes") and (not keep or "shapes" in keep):
            self.attempt("shapes", "pages in each shape", self.shapes)
        if only == "cluster" or (not only and (not keep or "cluster" in keep)):
            self.attempt("cluster", "the cluster", self.cluster)
        if (not only or only in "layers") and (not keep or "layers" in keep):
            # The three layers the project ships, alternating in one run: echo, chat round trip,
            # 100 clients and fan-out (README's layer section quotes them).
            for round_number in range(1 if self.quick else 2):
                for layer in ("redis", "ipc", "rabbitmq"):
                    self.configuration(layer, "tuned", 2, ["echo", "chat1", "chat100", "fanout"],
                                       label="layers %d" % (round_number + 1))
        if (not only or only in "interpreters") and (not keep or "interpreters" in keep):
            # daphne on the workers' Python (3.7) against the interface's (venv-interface), the two
            # alternating: echo, chat round trip and 100 clients, on both layers.
            for _ in range(1 if self.quick else 2):
                for layer in ("redis", "ipc"):
                    for daphne in ("", "venv-interface"):
                        self.configuration(layer, "tuned", 2, ["echo", "chat1", "chat100"], daphne=daphne)
        for layer, flavor, workers, scenarios in plan:
            if only and only not in "%s/%s/%dw" % (layer, flavor, workers):
                continue
            if keep:
                scenarios = [s for s in scenarios if s in keep]
            if scenarios:
                self.configuration(layer, flavor, workers, scenarios)
                if "sockets" in scenarios and not self.no_peer:  # side by side: the peer right after
                    self.peer_sockets()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs (a smoke test of the bench)")
    parser.add_argument("--only", help="run the configurations whose name contains this, e.g. redis/tuned")
    parser.add_argument("--soak", type=int, default=600, help="seconds of the memory soak (default 600)")
    parser.add_argument("--scenarios", help="comma-separated subset, e.g. echo,chat1,sockets (default: all)")
    parser.add_argument("--sockets", type=int,
                        help="sockets in the sockets scenario (default 20000; 2000 with --quick)")
    parser.add_argument("--no-peer", action="store_true",
                        help="sockets: not the peer after the deployment (a repeat of the deployment's side)")
    args = parser.parse_args()
    bench = Bench(args.quick, args.soak, args.sockets)
    bench.no_peer = args.no_peer
    started = time.time()
    try:
        bench.run(args.only, args.scenarios.split(",") if args.scenarios else None)
    finally:
        os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = os.path.join(HERE, "results", "%s.json" % stamp)
        with open(path, "w") as out:
            json.dump({"date": stamp, "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                                  "python": platform.python_version()},
                       "seconds": time.time() - started, "quick": args.quick,
                       "results": bench.results}, out)
        shutil.rmtree(bench.workdir, ignore_errors=True)
        progress("raw results: %s" % path)


if __name__ == "__main__":
    main()

"""The load generator (asyncio, aiohttp; runs in bench/venv on a modern Python).

Each subcommand drives the site through nginx and prints one JSON object on stdout. The orchestrator
(bench/run.py) signs the users up and hands their session cookies over in a JSON file.
"""
import argparse
import asyncio
import json
import random
import sys
import time
import uuid

import aiohttp


def session(cookie=None, unix=None):
    """A client session; unix: a Unix socket to connect to instead of the URL's host (a daphne's
    own socket, nginx left out)."""
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
    connector = aiohttp.UnixConnector(path=unix) if unix else None
    s = aiohttp.ClientSession(cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=60), connector=connector)
    if cookie:
        s.cookie_jar.update_cookies({"sessionid": cookie})
    return s


async def ws_open(s, base, path):
    return await s.ws_connect(base.replace("http", "ws", 1) + path, origin=base, max_msg_size=0)


async def until(ws, predicate):
    while True:
        msg = await ws.receive()
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise RuntimeError("socket closed: %s" % msg)
        frame = json.loads(msg.data) if msg.data.startswith("{") else msg.data
        if predicate(frame):
            return frame


async def echo(args):
    """Raw layer echo: one socket, send and wait, n times (no database)."""
    async with session(unix=args.unix) as s:
        ws = await ws_open(s, args.url, "/ws/echo/")
        out = []
        for n in range(args.warmup + args.n):
            started = time.perf_counter()
            await ws.send_str("e%d" % n)
            await until(ws, lambda f: f == "e%d" % n)
            if n >= args.warmup:
                out.append(1000 * (time.perf_counter() - started))
        await ws.close()
    return {"latency_ms": out}


async def chat_client(s, base, room, n, duration, results, warmup=0, interval=0.0):
    ws = await ws_open(s, base, "/ws/rooms/%s/" % room)
    deadline = time.perf_counter() + duration if duration else None
    i = 0
    while (deadline is None and i < n + warmup) or (deadline is not None and time.perf_counter() < deadline):
        client_id = uuid.uuid4().hex
        started = time.perf_counter()
        await ws.send_str(json.dumps({"type": "message", "text": "bench %d" % i, "client_id": client_id}))
        try:
            frame = await asyncio.wait_for(until(ws, lambda f: isinstance(f, dict) and f.get("type") in (
                "ack", "error") and (f.get("client_id") == client_id or f["type"] == "error")), 20)
        except asyncio.TimeoutError:  # no ack: counted, and the client goes on (a real one resends)
            frame = {"type": "error", "code": "no_ack"}
        if frame["type"] == "error":
            results["errors"] += 1
        elif i >= warmup:
            results["latency_ms"].append(1000 * (time.perf_counter() - started))
        i += 1
        if interval:
            await asyncio.sleep(interval)
    await ws.close()


async def chat(args):
    """Chat round trip (send -> own ack, database write included): one client, or many, each in
    its own room, for a duration."""
    users = json.load(open(args.users))
    results = {"latency_ms": [], "errors": 0}
    sessions = [session(u["cookie"]) for u in users]
    started = time.perf_counter()
    try:
        await asyncio.gather(*[chat_client(s, args.url, u["room"], args.n, args.duration, results,
                                           args.warmup, args.interval) for s, u in zip(sessions, users)])
    finally:
        for s in sessions:
            await s.close()
    elapsed = time.perf_counter() - started
    results["messages_per_second"] = len(results["latency_ms"]) / elapsed
    return results


async def fanout(args):
    """One message to a room of `members` sockets: time until the last member has it."""
    users = json.load(open(args.users))
    sessions = [session(u["cookie"]) for u in users]
    sockets, refused = [], 0
    try:
        for i in range(args.members):
            s = sessions[i % len(sessions)]
            try:
                sockets.append(await ws_open(s, args.url, "/ws/rooms/%s/" % args.room))
            except aiohttp.ClientError:  # a refused handshake (e.g. 503 when websocket.connect is full)
                refused += 1
            if i % 50 == 49:
                await asyncio.sleep(0.2)  # let the workers keep up with the handshakes
        await asyncio.sleep(1.0)
        out, missed = [], 0
        for n in range(args.messages):
            text = "fan %s" % uuid.uuid4().hex

            async def wait_for(ws):
                try:
                    await asyncio.wait_for(until(ws, lambda f: isinstance(f, dict) and f.get("text") == text), 30)
                    return time.perf_counter()
                except asyncio.TimeoutError:
                    return None
            waiters = [asyncio.ensure_future(wait_for(ws)) for ws in sockets]
            sender = sockets[0]
            started = time.perf_counter()
            await sender.send_str(json.dumps({"type": "message", "text": text, "client_id": uuid.uuid4().hex}))
            arrived = await asyncio.gather(*waiters)
            missed += sum(1 for a in arrived if a is None) + refused
            got = [a for a in arrived if a is not None]
            out.append(1000 * (max(got) - started) if got else None)
            await asyncio.sleep(0.5)
        for ws in sockets:
            await ws.close()
    finally:
        for s in sessions:
            await s.close()
    return {"last_delivery_ms": out, "missed": missed, "members": args.members, "refused": refused}


async def http(args):
    """Open-loop HTTP at a fixed rate (requests start on schedule whatever the answers do)."""
    results = {"latency_ms": [], "errors": 0}
    connector = aiohttp.TCPConnector(limit=args.connections)
    async with aiohttp.ClientSession(connector=connector) as s:
        async def one():
            started = time.perf_counter()
            try:
                async with s.get(args.url + args.path) as resp:
                    await resp.read()
                    if resp.status != 200:
                        results["errors"] += 1
                        return
            except aiohttp.ClientError:
                results["errors"] += 1
                return
            results["latency_ms"].append(1000 * (time.perf_counter() - started))
        tasks = []
        started = time.perf_counter()
        total = int(args.rate * args.duration)
        for n in range(total):
            delay = started + n / args.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one()))
        await asyncio.gather(*tasks)
        results["achieved_rps"] = total / (time.perf_counter() - started)
    return results


async def longpoll(args):
    """Long-poll wake-up: one user holds a poll, another sends; time from send to the poll's answer."""
    users = json.load(open(args.users))
    out = []
    async with session(users[0]["cookie"]) as reader, session(users[1]["cookie"]) as writer:
        ws = await ws_open(writer, args.url, "/ws/rooms/%s/" % args.room)
        after = 0
        async with reader.get(args.url + "/rooms/%s/messages?after=0" % args.room) as resp:
            history = await resp.json()
            after = history[-1]["id"] if history else 0
        for n in range(args.n):
            poll = asyncio.ensure_future(reader.get(args.url + "/poll/rooms/%s/?after=%d" % (args.room, after)))
            await asyncio.sleep(0.3)  # the poll is held by now
            started = time.perf_counter()
            await ws.send_str(json.dumps({"type": "message", "text": "wake %d" % n, "client_id": uuid.uuid4().hex}))
            resp = await poll
            frames = await resp.json()
            out.append(1000 * (time.perf_counter() - started))
            after = frames[-1]["id"]
        await ws.close()
    return {"latency_ms": out}


async def burn(args):
    """CPU-heavy consumer: `clients` sockets each asking for `ms` of work per message."""
    results = {"latency_ms": [], "errors": 0}

    async def client(s):
        ws = await ws_open(s, args.url, "/ws/echo/")
        deadline = time.perf_counter() + args.duration
        while time.perf_counter() < deadline:
            token = "burn:%d:%s" % (args.ms, uuid.uuid4().hex[:8])
            started = time.perf_counter()
            await ws.send_str(token)
            await until(ws, lambda f: f == token)
            results["latency_ms"].append(1000 * (time.perf_counter() - started))
        await ws.close()
    started = time.perf_counter()
    async with session() as s:
        await asyncio.gather(*[client(s) for _ in range(args.clients)])
    results["messages_per_second"] = len(results["latency_ms"]) / (time.perf_counter() - started)
    return results


async def hold(args):
    """Open `members` sockets to one room (users taken in turn), say "ready" on stderr, keep them
    open for `duration` seconds: the orchestrator measures memory meanwhile."""
    users = json.load(open(args.users))
    sessions = [session(u["cookie"]) for u in users]
    sockets, refused = [], 0
    try:
        for i in range(args.members):
            try:
                sockets.append(await ws_open(sessions[i % len(sessions)], args.url,
                                             "/ws/rooms/%s/" % args.room))
            except aiohttp.ClientError:
                refused += 1
            if i % 50 == 49:
                await asyncio.sleep(0.2)
        print("ready", file=sys.stderr, flush=True)
        await asyncio.sleep(args.duration)
        alive = sum(not ws.closed for ws in sockets)
        for ws in sockets:
            await ws.close()
    finally:
        for s in sessions:
            await s.close()
    return {"opened": len(sockets), "refused": refused, "alive_at_end": alive}


def backoff(failures):
    """Seconds before reconnect attempt number `failures` (from 1): the room page's own rule
    (chat/static/chat/client.js), exponential from 0.5 s up to 10 s with jitter (half to all of it)."""
    return min(10.0, 0.5 * 2 ** (failures - 1)) * (0.5 + random.random() / 2)


class Member(object):
    """One socket of a `sockets` process: reads every frame (aiohttp answers daphne's pings only
    while someone reads), notes when each broadcast arrives, and once `reconnect` is on comes back
    after the page's backoff whenever its socket closes."""

    def __init__(self, crowd, index):
        self.crowd, self.index = crowd, index
        self.ws, self.session = None, None

    async def open(self):
        """One handshake; the failure's kind ("503", another status, or the exception's name) or None."""
        crowd = self.crowd
        if self.session is None:
            self.session = aiohttp.ClientSession(
                connector=crowd.connector, connector_owner=False, cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=60))
        headers = {"Cookie": "sessionid=%s" % crowd.cookies[self.index % len(crowd.cookies)]} \
            if crowd.cookies[0] else None
        try:
            self.ws = await self.session.ws_connect(crowd.ws_url, origin=crowd.url, headers=headers,
                                                    max_msg_size=0, autoping=True)
        except aiohttp.WSServerHandshakeError as exc:
            return str(exc.status)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            return type(exc).__name__
        return None

    async def read(self):
        """Read until the socket closes; then, if reconnecting, come back (counted)."""
        crowd = self.crowd
        while True:
            msg = await self.ws.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                if crowd.marker in msg.data:
                    frame = json.loads(msg.data)
                    arrived = crowd.arrivals.setdefault(frame.get("text"), [])
                    arrived.append(time.monotonic())
                    waiter = crowd.waiters.get(frame.get("text"))
                    if waiter is not None and len(arrived) >= crowd.open and not waiter.done():
                        waiter.set_result(None)
                continue
            if msg.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                continue
            break  # closed, closing or an error
        crowd.open -= 1
        crowd.closes += 1
        crowd.closed_at.append(time.monotonic())
        if not crowd.reconnect or crowd.quitting:
            return
        failures = 0
        while not crowd.quitting:
            failures += 1
            await asyncio.sleep(backoff(failures))
            failed = await self.open()
            if failed is None:
                break
            crowd.reconnect_failures[failed] = crowd.reconnect_failures.get(failed, 0) + 1
        else:
            return
        crowd.open += 1
        crowd.back_at.append(time.monotonic())
        await self.read()


class Crowd(object):
    """The sockets of one `sockets` process, all in one room, from one loopback source address."""

    marker = '"text": "bcast-'  # only broadcast frames are parsed (presence and acks are skipped)

    def __init__(self, args):
        self.url = args.url
        self.ws_url = args.url.replace("http", "ws", 1) + "/ws/rooms/%s/" % args.room
        self.cookies = [u["cookie"] for u in json.load(open(args.users))]
        # One connector for every socket, bound to this process's source address: one address has
        # ~28,000 ephemeral ports towards one server; limit=0: no pool ceiling for the sockets.
        self.connector = aiohttp.TCPConnector(limit=0, local_addr=(args.source, 0) if args.source else None,
                                              force_close=True)
        self.members = [Member(self, i) for i in range(args.members)]
        self.open, self.closes, self.reconnect, self.quitting = 0, 0, False, False
        self.arrivals, self.waiters = {}, {}
        self.closed_at, self.back_at, self.reconnect_failures = [], [], {}
        self.readers = []

    async def open_all(self, concurrency):
        """Open every member's socket, `concurrency` handshakes at a time; what happened."""
        gate, failures, took = asyncio.Semaphore(concurrency), {}, []

        async def one(member):
            async with gate:
                started = time.monotonic()
                failed = await member.open()
                took.append(time.monotonic() - started)
            if failed:
                failures[failed] = failures.get(failed, 0) + 1
                return
            self.open += 1
            self.readers.append(asyncio.ensure_future(member.read()))
        started = time.monotonic()
        await asyncio.gather(*[one(m) for m in self.members])
        took.sort()
        return {"event": "opened", "accepted": self.open, "failures": failures, "started": started,
                "finished": time.monotonic(),
                "handshake_p50_ms": 1000 * took[len(took) // 2] if took else None,
                "handshake_max_ms": 1000 * took[-1] if took else None}

    async def command(self, line):
        """Answer one line of the orchestrator's: a JSON object for its stdout."""
        words = line.split()
        if words[0] == "send":  # a broadcast from this process's first open socket
            for member in self.members:
                if member.ws is not None and not member.ws.closed:
                    await member.ws.send_str(json.dumps({"type": "message", "text": words[1],
                                                         "client_id": uuid.uuid4().hex}))
                    return {"event": "sent", "at": time.monotonic()}
            return {"event": "sent", "at": None}
        if words[0] == "wait":  # until every open socket has the broadcast, or the timeout
            text, timeout = words[1], float(words[2])
            waiter = self.waiters[text] = asyncio.get_running_loop().create_future()
            if len(self.arrivals.get(text, ())) >= self.open:
                waiter.set_result(None)
            try:
                await asyncio.wait_for(asyncio.shield(waiter), timeout)
            except asyncio.TimeoutError:
                pass
            got = self.arrivals.pop(text, [])
            return {"event": "arrived", "count": len(got), "expected": self.open,
                    "last": max(got) if got else None}
        if words[0] == "reconnect":
            self.reconnect = True
            return {"event": "reconnecting"}
        if words[0] == "status":
            return {"event": "status", "open": self.open, "closes": self.closes,
                    "last_closed": max(self.closed_at) if self.closed_at else None,
                    "last_back": max(self.back_at) if self.back_at else None, "back": len(self.back_at),
                    "reconnect_failures": self.reconnect_failures}
        raise ValueError("unknown command %r" % line)

    async def close(self):
        self.quitting = True
        for member in self.members:
            if member.ws is not None:
                await member.ws.close()
            if member.session is not None:
                await member.session.close()
        for reader in self.readers:
            reader.cancel()
        await self.connector.close()


async def sockets(args):
    """One process of the `sockets` scenario (bench/run.py starts several): open `members` sockets
    to one room as fast as `concurrency` allows and say how that went, then obey the orchestrator's
    lines on stdin (send TEXT, wait TEXT SECONDS, reconnect, status, quit), one JSON line each."""
    crowd = Crowd(args)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def say(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()
    say(await crowd.open_all(args.concurrency))
    pending = set()
    while True:
        line = (await reader.readline()).decode().strip()
        if not line or line == "quit":
            break

        async def answer(line=line):
            say(await crowd.command(line))
        task = asyncio.ensure_future(answer())  # a wait must not hold up the next line (a send)
        pending.add(task)
        task.add_done_callback(pending.discard)
    await crowd.close()
    return {"event": "done", "open": crowd.open, "closes": crowd.closes}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenario", choices=["echo", "chat", "fanout", "http", "longpoll", "burn", "hold",
                                             "sockets"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--users", help="JSON file: [{cookie, room}, ...]")
    parser.add_argument("--room")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--duration", type=float, default=0)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--path", default="/healthz")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--ms", type=int, default=5)
    parser.add_argument("--interval", type=float, default=0.0, help="chat: pause between a client's messages")
    parser.add_argument("--unix", help="echo: connect to this Unix socket (a daphne's) instead of the URL's host")
    parser.add_argument("--source", help="sockets: the loopback address the sockets are opened from")
    parser.add_argument("--concurrency", type=int, default=100, help="sockets: handshakes at once")
    args = parser.parse_args()
    result = asyncio.run(globals()[args.scenario](args))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()

"""The load generator (asyncio, aiohttp; runs in bench/venv on a modern Python).

Each subcommand drives the site through nginx and prints one JSON object on stdout. The orchestrator
(bench/run.py) signs the users up and hands their session cookies over in a JSON file.
"""
import argparse
import asyncio
import json
import sys
import time
import uuid

import aiohttp


def session(cookie=None):
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
    s = aiohttp.ClientSession(cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=60))
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
    async with session() as s:
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


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenario", choices=["echo", "chat", "fanout", "http", "longpoll", "burn", "hold"])
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
    args = parser.parse_args()
    result = asyncio.run(globals()[args.scenario](args))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()

"""What an idle WebSocket costs daphne 1.4 in Python objects, by package, line and type (issue 16's RSS target).

Run with the interface's Python: it starts daphne on an in-memory layer (accepting every socket
itself, so no worker is needed), opens the sockets from the load generator's Python, and prints the
memory traced per socket once they are all open:

    venv-interface/bin/python bench/census.py 2000 [seconds idle before the census, 3]
"""
import collections
import gc
import os
import subprocess
import sys
import tracemalloc

tracemalloc.start(1)

from asgiref.inmemory import ChannelLayer  # noqa: E402 (traced from here on)
from daphne.server import Server  # noqa: E402
from twisted.internet import reactor, task  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = """
import asyncio, sys, aiohttp
async def main(n, port):
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    opened, gate = [], asyncio.Semaphore(100)
    async def one():
        async with gate:
            socket = await session.ws_connect("http://127.0.0.1:%d/ws/census/" % port)
        opened.append(socket)
        async for _ in socket:  # reading answers daphne's pings
            pass
    await asyncio.gather(*(one() for _ in range(n)))
asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


def census():
    gc.collect()
    types = collections.Counter("%s.%s" % (type(o).__module__, type(o).__qualname__) for o in gc.get_objects())
    return tracemalloc.take_snapshot(), types


def report(before, after, sockets):
    (snapshot0, types0), (snapshot, types) = before, after
    by_file = snapshot.compare_to(snapshot0, "filename")
    print("Python memory traced per idle socket: %.1f KiB" % (sum(s.size_diff for s in by_file) / sockets / 1024))
    packages = collections.Counter()
    for stat in by_file:
        path = stat.traceback[0].filename
        packages[path.split("site-packages/")[-1].split("/")[0] if "site-packages" in path else
                 os.path.basename(path)] += stat.size_diff
    for package, size in packages.most_common(6):
        print("  %-12s %5.2f KiB" % (package, size / sockets / 1024))
    print("largest allocation sites (bytes per socket):")
    for stat in snapshot.compare_to(snapshot0, "lineno")[:10]:
        frame = stat.traceback[0]
        print("  %6.0f  %s:%d" % (stat.size_diff / sockets, "/".join(frame.filename.split("/")[-2:]), frame.lineno))
    print("objects per socket:")
    grown = sorted(((types[name] - types0.get(name, 0), name) for name in types), reverse=True)
    for count, name in grown[:10]:
        print("  %5.2f  %s" % (count / sockets, name))


def main(sockets, idle, port=18760):
    layer = ChannelLayer(capacity=sockets * 2)
    state = {"accepted": 0}

    def accept_all():
        while True:
            channel, message = layer.receive(["websocket.connect", "websocket.disconnect"], block=False)
            if channel is None:
                return
            if channel == "websocket.connect":
                layer.send(message["reply_channel"], {"accept": True})
                state["accepted"] += 1

    def watch():
        if "before" not in state:
            state["before"] = census()
            state["client"] = subprocess.Popen([os.path.join(HERE, "venv", "bin", "python"), "-c", CLIENT,
                                                str(sockets), str(port)])
        elif state["accepted"] >= sockets:
            state.setdefault("settled", 0)
            state["settled"] += 1
            if state["settled"] == idle:  # idle this long: what the handshake left is freed
                report(state["before"], census(), sockets)
                state["client"].kill()
                reactor.stop()

    task.LoopingCall(accept_all).start(0.005)
    task.LoopingCall(watch).start(1.0)
    Server(channel_layer=layer, endpoints=["tcp:port=%d:interface=127.0.0.1" % port], signal_handlers=False,
           websocket_connect_timeout=30, websocket_handshake_timeout=30, action_logger=None, verbosity=0).run()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000, int(sys.argv[2]) if len(sys.argv) > 2 else 3)

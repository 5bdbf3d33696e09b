"""The cluster's front door on this machine: 127.0.0.1:PORT relayed to the balancer's nginx inside
its namespace (`python -m ops.cluster.portal PORT NAMESPACE`).

The listening socket is made in this machine's namespace, then the process joins the balancer's:
every connection it makes from then on starts there. So the cluster needs no route to the machine,
and the machine none into the cluster. Imports no Django.
"""
import asyncio
import ctypes
import os
import socket
import sys

CLONE_NEWNET = 0x40000000
CHUNK = 65536


def join(namespace):
    """Enter a network namespace made by `ip netns add` (setns(2); Python 3.7 has no os.setns)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(os.path.join("/var/run/netns", namespace), os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns into %s failed" % namespace)
    finally:
        os.close(fd)


async def pump(reader, writer):
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.write_eof()  # half-close: the other direction may still be talking
        except (OSError, RuntimeError):
            writer.close()


def no_delay(writer):
    """Nagle's algorithm off: a WebSocket frame written right behind another (a broadcast, then its
    ack) waited 40 ms for the peer's delayed ACK. asyncio turns it off only for sockets it made
    with proto=IPPROTO_TCP, which accepted ones are not."""
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def relay(client_reader, client_writer, port):
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        client_writer.close()
        return
    no_delay(client_writer)
    no_delay(writer)
    await asyncio.gather(pump(client_reader, writer), pump(reader, client_writer))
    writer.close()
    client_writer.close()


def main(port, namespace):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1024)
    join(namespace)  # single-threaded still: setns applies to this thread, the only one
    loop = asyncio.get_event_loop()
    loop.run_until_complete(asyncio.start_server(
        lambda r, w: relay(r, w, port), sock=listener, backlog=1024, limit=CHUNK))
    print("portal: 127.0.0.1:%d -> %s 127.0.0.1:%d" % (port, namespace, port), flush=True)
    loop.run_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])

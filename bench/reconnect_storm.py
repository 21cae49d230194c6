"""A reconnect storm against one real worker: N agents open their event streams at once.

``python -m bench.reconnect_storm --agents 5000 --backlog 20000`` starts the real server
(one worker, memory store) on a socket listening with ``--backlog`` (the kernel caps it at
``net.core.somaxconn``), registers the agents, then opens every stream at the same moment,
as agents do after a deploy or a network blip. Meanwhile one probe sends a heartbeat every
50 ms on its own connection. It prints the listen-queue overflows and drops the kernel
counted meanwhile (``TcpExt`` in ``/proc/net/netstat``, for the whole network namespace:
run it on a quiet machine), how long the streams took to open (a connection whose SYN was
dropped waits a retransmit: 1 s, then 3 s more), and the probe's slowest heartbeat.
"""

from __future__ import annotations

import argparse
import asyncio
import selectors
import socket
import statistics
import time
from pathlib import Path

import httpx

from harness.gunicorn import GunicornServer

NETSTAT = Path("/proc/net/netstat")
COUNTERS = ("ListenOverflows", "ListenDrops", "TCPReqQFullDrop", "TCPReqQFullDoCookies")


def tcp_ext() -> dict[str, int]:
    lines = NETSTAT.read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names.startswith("TcpExt:"):
            return dict(zip(names.split()[1:], map(int, values.split()[1:]), strict=True))
    return {}


async def probe(port: int, stop: asyncio.Event, slowest: list[float]) -> None:
    """A heartbeat every 50 ms on a keep-alive connection (a new one if it is closed: the
    time to reconnect counts)."""
    request = b"POST /api/v1/agents/probe/heartbeat HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    writer: asyncio.StreamWriter | None = None
    while not stop.is_set():
        sent = time.monotonic()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            await reader.readuntil(b"\r\n\r\n")
        except (OSError, asyncio.IncompleteReadError):
            writer = None
            continue
        slowest.append(time.monotonic() - sent)
        await asyncio.sleep(0.05)
    if writer is not None:
        writer.close()


def open_streams(port: int, agents: int) -> tuple[list[float], list[str], list[socket.socket]]:
    """Start every connection at once (non-blocking connects), send each stream request
    the moment its connection is up, and wait until each has read ``: connected``: when
    each opened, what failed, and the open sockets."""
    selector = selectors.DefaultSelector()
    started = time.monotonic()
    pending: dict[socket.socket, tuple[bytes, bytearray]] = {}
    for n in range(agents):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        head = f"GET /api/v1/agents/storm-{n:05d}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        pending[sock] = (head.encode(), bytearray())
        selector.register(sock, selectors.EVENT_WRITE)
    opened: list[float] = []
    failed: list[str] = []
    done: list[socket.socket] = []
    deadline = started + 60
    while pending and time.monotonic() < deadline:
        for key, events in selector.select(timeout=1):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            head, data = pending[sock]
            try:
                if events & selectors.EVENT_WRITE:
                    sock.send(head)  # about 60 bytes: one send
                    selector.modify(sock, selectors.EVENT_READ)
                    continue
                chunk = sock.recv(4096)
            except OSError as exc:
                chunk, error = b"", repr(exc)
            else:
                error = "closed before the stream opened"
            if not chunk:
                failed.append(error)
            else:
                data += chunk
                if b": connected" not in data:
                    continue
                opened.append(time.monotonic() - started)
                done.append(sock)
            selector.unregister(sock)
            del pending[sock]
    failed += ["no answer within 60 s"] * len(pending)
    for sock in pending:
        sock.close()
    return opened, failed, done


async def storm(port: int, agents: int) -> dict[str, object]:
    slowest: list[float] = []
    stop = asyncio.Event()
    probing = asyncio.create_task(probe(port, stop, slowest))
    await asyncio.sleep(0.2)
    before = tcp_ext()
    started = time.monotonic()
    opened, failed, sockets = await asyncio.to_thread(open_streams, port, agents)
    took = time.monotonic() - started
    after = tcp_ext()
    stop.set()
    await probing
    for sock in sockets:
        sock.close()
    opened.sort()
    return {
        "streams opened": len(opened),
        "failed": len(failed),
        "first failures": sorted(set(failed))[:3],
        "all open after (s)": round(took, 2),
        "open p50 / p99 / max (s)": (
            round(statistics.median(opened), 3),
            round(opened[int(len(opened) * 0.99) - 1], 3),
            round(opened[-1], 3),
        )
        if opened
        else None,
        "opened after more than 1 s": sum(1 for value in opened if value > 1.0),
        "probe heartbeat max (ms)": round(max(slowest) * 1000, 1) if slowest else None,
        **{name: after.get(name, 0) - before.get(name, 0) for name in COUNTERS},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=5000)
    parser.add_argument("--backlog", type=int, default=20_000)
    args = parser.parse_args()
    somaxconn = Path("/proc/sys/net/core/somaxconn").read_text().strip()
    env = {"AGENT_REGISTRY_KEEPALIVE_SECONDS": "60"}
    with GunicornServer("real", env=env, label="storm", backlog=args.backlog) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for n in range(args.agents):
                client.post("/api/v1/agents/register", json={"id": f"storm-{n:05d}", "group": "s"})
            client.post("/api/v1/agents/register", json={"id": "probe", "group": "p"})
        figures = asyncio.run(storm(server.port, args.agents))
    print(f"agents {args.agents}, backlog {args.backlog} (net.core.somaxconn {somaxconn})")
    for name, value in figures.items():
        print(f"  {name}: {value}")


if __name__ == "__main__":
    main()

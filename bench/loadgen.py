"""The load generator: a separate process, asyncio protocols over raw sockets.

Run as ``python -m bench.loadgen``: it reads one JSON spec on stdin, drives the server at
``spec["port"]`` on 127.0.0.1 and prints one JSON result on stdout (progress on stderr).

Why this shape: a connection costs a protocol object and a transport (a few KB, tens of µs
per request) instead of a client library's machinery, so one core of load generation
can keep a 20 000-stream server busy. It measures itself (``getrusage``) and the server
(``/proc/PID/stat``, ``/proc/PID/status``) around every phase, so a reader can tell
whether the server, the load generator or the rest of the machine was the limit.

HTTP/1.1 only, as the server speaks it: keep-alive connections for requests (one request
in flight per connection), ``Content-Length`` or chunked responses, and chunked event
streams parsed into SSE events.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import resource
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

LOOPBACK = "127.0.0.1"
# Linux: let connect() pick the source port, so several source addresses each get the
# whole ephemeral range (bind() alone would reserve a port per address up front).
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
# The server closes idle keep-alive connections after 5 s (gunicorn keepalive); reconnect
# before sending on a connection idle for longer than this.
IDLE_RECONNECT_S = 3.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

now = time.monotonic


def log(message: str) -> None:
    print(f"[loadgen {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def loopback_only(host: str) -> str:
    if not host.startswith("127."):
        raise SystemExit(f"refusing to talk to {host}: the benchmark uses 127.0.0.0/8 only")
    return host


# --------------------------------------------------------------------------- measuring


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_open_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def proc_nofile_limit(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/limits") as handle:
            for line in handle:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
    except (OSError, ValueError):
        return None
    return None


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, from /proc/stat."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    total = sum(values[:8])
    idle = values[3] + values[4]
    return (total - idle) / CLK_TCK, total / CLK_TCK


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Meter:
    """CPU of the load generator, the server processes and the machine over one phase."""

    def __init__(self, server_pids: Sequence[int], extra_pids: dict[str, int]) -> None:
        self.server_pids = list(server_pids)
        self.extra_pids = dict(extra_pids)

    def snapshot(self) -> dict[str, Any]:
        busy, total = machine_cpu()
        return {
            "t": now(),
            "own": own_cpu_seconds(),
            "server": sum(proc_cpu_seconds(pid) or 0.0 for pid in self.server_pids),
            "extra": {name: proc_cpu_seconds(pid) or 0.0 for name, pid in self.extra_pids.items()},
            "busy": busy,
            "total": total,
        }

    def rss_kb(self) -> int:
        return sum(proc_rss_kb(pid) or 0 for pid in self.server_pids)

    @staticmethod
    def delta(start: dict[str, Any], end: dict[str, Any]) -> dict[str, Any]:
        wall = max(end["t"] - start["t"], 1e-9)
        own = end["own"] - start["own"]
        server = end["server"] - start["server"]
        extra = {name: end["extra"][name] - start["extra"][name] for name in start["extra"]}
        busy = end["busy"] - start["busy"]
        other = max(0.0, busy - own - server - sum(extra.values()))
        return {
            "wall_s": round(wall, 4),
            "loadgen_cpu_s": round(own, 3),
            "loadgen_cpu_pct": round(100 * own / wall, 1),
            "server_cpu_s": round(server, 3),
            "server_cpu_pct": round(100 * server / wall, 1),
            **{f"{name}_cpu_pct": round(100 * value / wall, 1) for name, value in extra.items()},
            # CPU used on the machine by anything else (other jobs, the kernel's softirq
            # work not charged to a process): % of one core.
            "other_cpu_pct": round(100 * other / wall, 1),
            "machine_busy_pct_of_all_cores": round(
                100 * busy / max(end["total"] - start["total"], 1e-9), 1
            ),
        }


def percentiles(values: Sequence[float], scale: float = 1000.0) -> dict[str, float | None]:
    """p50 / p99 / max (nearest rank), multiplied by ``scale`` (s -> ms by default)."""
    if not values:
        return {"p50": None, "p99": None, "max": None, "count": 0}
    ordered = sorted(values)

    def rank(q: float) -> float:
        index = min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))
        return round(ordered[index] * scale, 3)

    return {
        "p50": rank(0.50),
        "p99": rank(0.99),
        "max": round(ordered[-1] * scale, 3),
        "count": len(ordered),
    }


# --------------------------------------------------------------------------- connections


def source_addresses(connections: int, per_address: int = 15_000) -> list[str]:
    """One 127.0.0.x source address per ``per_address`` connections (x = 1, 2, ...)."""
    count = max(1, -(-connections // per_address))
    return [f"127.0.0.{i}" for i in range(1, count + 1)]


async def connect(
    host: str, port: int, factory: Callable[[], asyncio.Protocol], source: str | None = None
) -> asyncio.Protocol:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source is not None:
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((loopback_only(source), 0))
        await loop.sock_connect(sock, (host, port))
        _, protocol = await loop.create_connection(factory, sock=sock)
    except BaseException:
        sock.close()
        raise
    return protocol


def _header_value(head: bytes, name: bytes) -> bytes | None:
    """Value of a header in a raw (lower-cased) response head, or None."""
    start = head.find(b"\r\n" + name + b":")
    if start < 0:
        return None
    start += len(name) + 3
    end = head.find(b"\r\n", start)
    return head[start : end if end >= 0 else len(head)].strip()


class HttpConnection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 client connection: one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False
        self.keep_alive = True
        self.last_used = now()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc!r}"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is not None and not self.waiter.done():
            self._parse()

    def _parse(self) -> None:
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buffer[:end]).lower()
        status = int(head[9:12])
        body_start = end + 4
        if (_header_value(head, b"connection") or b"") == b"close":
            self.keep_alive = False
        length = _header_value(head, b"content-length")
        if length is not None:
            body_end = body_start + int(length)
            if len(buffer) < body_end:
                return
            body = bytes(buffer[body_start:body_end])
            del buffer[:body_end]
        elif b"chunked" in (_header_value(head, b"transfer-encoding") or b""):
            parts = []
            pos = body_start
            while True:
                line_end = buffer.find(b"\r\n", pos)
                if line_end < 0:
                    return
                size = int(bytes(buffer[pos:line_end]).split(b";")[0], 16)
                if len(buffer) < line_end + 2 + size + 2:
                    return
                if size == 0:
                    pos = line_end + 4
                    break
                parts.append(bytes(buffer[line_end + 2 : line_end + 2 + size]))
                pos = line_end + 2 + size + 2
            body = b"".join(parts)
            del buffer[:pos]
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
            del buffer[:body_start]
        else:  # body until close: not used by this server
            return
        waiter, self.waiter = self.waiter, None
        assert waiter is not None
        waiter.set_result((status, body))

    async def request(
        self, host_header: str, method: str, path: str, body: bytes | None = None
    ) -> tuple[int, bytes]:
        assert self.transport is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {host_header}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        elif method == "POST":
            head += "Content-Length: 0\r\n"
        data = (head + "\r\n").encode() + (body or b"")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        self.last_used = now()
        try:
            return await self.waiter
        finally:
            self.last_used = now()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Client:
    """A pool-less client: one keep-alive connection, reopened when it went stale."""

    def __init__(self, host: str, port: int, source: str | None = None) -> None:
        self.host = host
        self.port = port
        self.source = source
        self.host_header = f"{host}:{port}"
        self.conn: HttpConnection | None = None

    async def request(
        self, method: str, path: str, body: bytes | None = None, retry: bool = True
    ) -> tuple[int, bytes]:
        for attempt in (0, 1):
            conn = self.conn
            if (
                conn is None
                or conn.closed
                or not conn.keep_alive
                or now() - conn.last_used > IDLE_RECONNECT_S
            ):
                if conn is not None:
                    conn.close()
                conn = self.conn = await connect(  # type: ignore[assignment]
                    self.host, self.port, HttpConnection, self.source
                )
            assert conn is not None
            try:
                return await conn.request(self.host_header, method, path, body)
            except ConnectionError:
                self.conn = None
                if not retry or attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# --------------------------------------------------------------------------- event streams


class Stream(asyncio.Protocol):
    """One agent's event stream: chunked HTTP body, parsed into SSE events."""

    def __init__(self, fleet: Fleet, agent_id: str) -> None:
        self.fleet = fleet
        self.agent_id = agent_id
        self.transport: asyncio.Transport | None = None
        self.head_done = False
        self.chunked = True
        self.raw = bytearray()  # bytes off the socket, chunk framing included
        self.sse = bytearray()  # the body, framing removed
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.counts: dict[bytes, int] = {}
        self.pings = 0
        self.ended = False
        self.error: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(  # type: ignore[attr-defined]
            f"GET /api/v1/agents/{self.agent_id}/events HTTP/1.1\r\n"
            f"Host: {self.fleet.host_header}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.fleet.on_end(self)
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"stream closed before ready: {exc!r}"))

    def data_received(self, data: bytes) -> None:
        received_at = now()
        raw = self.raw
        raw += data
        if not self.head_done:
            end = raw.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(raw[:end]).lower()
            status = int(head[9:12])
            if status != 200:
                self.error = f"HTTP {status}"
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(f"stream answered {status}"))
                self.transport.close()  # type: ignore[union-attr]
                return
            self.chunked = b"chunked" in (_header_value(head, b"transfer-encoding") or b"")
            self.head_done = True
            del raw[: end + 4]
        if self.chunked:
            pos = 0
            while True:
                line_end = raw.find(b"\r\n", pos)
                if line_end < 0:
                    break
                size = int(raw[pos:line_end], 16)
                stop = line_end + 2 + size
                if len(raw) < stop + 2:
                    break
                self.sse += raw[line_end + 2 : stop]
                pos = stop + 2
            if pos:
                del raw[:pos]
        else:
            self.sse += raw
            raw.clear()
        sse = self.sse
        start = 0
        while True:
            end = sse.find(b"\n\n", start)
            if end < 0:
                break
            block = sse[start:end]
            start = end + 2
            if block.startswith(b"id: "):
                line_end = block.find(b"\n")
                command_id = bytes(block[4:line_end])
                counts = self.counts
                counts[command_id] = counts.get(command_id, 0) + 1
                self.fleet.on_event(self, command_id, received_at)
            elif block.startswith(b"retry:"):
                if not self.ready.done():
                    self.ready.set_result(None)
            elif block.startswith(b":"):
                self.pings += 1
        if start:
            del sse[:start]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Fleet:
    """N open streams and what they received."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.host_header = f"{host}:{port}"
        self.streams: list[Stream] = []
        self.received = 0
        self.receipts: list[tuple[bytes, float]] = []
        self.ended = 0
        self.target = 0
        self.target_reached: asyncio.Event = asyncio.Event()
        self.on_command: Callable[[Stream, bytes, float], None] | None = None

    def on_event(self, stream: Stream, command_id: bytes, received_at: float) -> None:
        self.received += 1
        self.receipts.append((command_id, received_at))
        if self.on_command is not None:
            self.on_command(stream, command_id, received_at)
        if self.received >= self.target:
            self.target_reached.set()

    def on_end(self, stream: Stream) -> None:
        self.ended += 1

    def expect(self, total: int) -> None:
        self.target = total
        self.target_reached.clear()
        if self.received >= total:
            self.target_reached.set()

    async def open(
        self, agent_ids: Sequence[str], concurrency: int, sources: Sequence[str], timeout: float
    ) -> dict[str, Any]:
        """Open a stream per agent, ``concurrency`` opening at once; each waits for ready."""
        queue = list(reversed(agent_ids))
        failures: dict[str, int] = {}
        ready_times: list[float] = []
        started = now()
        deadline = started + timeout
        index = 0

        async def opener() -> None:
            nonlocal index
            while queue and now() < deadline:
                agent_id = queue.pop()
                source = sources[index % len(sources)]
                index += 1
                t0 = now()
                stream: Stream | None = None
                try:
                    stream = await asyncio.wait_for(  # type: ignore[assignment]
                        connect(self.host, self.port, lambda a=agent_id: Stream(self, a), source),
                        timeout=max(0.1, deadline - now()),
                    )
                    assert stream is not None
                    self.streams.append(stream)
                    await asyncio.wait_for(stream.ready, timeout=max(0.1, deadline - now()))
                    ready_times.append(now() - t0)
                except (OSError, TimeoutError, ConnectionError) as exc:
                    if stream is not None:
                        stream.close()
                        self.streams.remove(stream)
                    key = type(exc).__name__
                    if isinstance(exc, OSError) and exc.errno:
                        key += f" errno {exc.errno}"
                    failures[key] = failures.get(key, 0) + 1

        await asyncio.gather(*(opener() for _ in range(concurrency)))
        elapsed = now() - started
        opened = len(ready_times)
        return {
            "attempted": len(agent_ids),
            "opened": opened,
            "not_attempted": len(queue),
            "failures": failures,
            "time_to_open_s": round(elapsed, 3),
            "opens_per_s": round(opened / elapsed, 1) if elapsed else None,
            "open_latency_ms": percentiles(ready_times),
        }

    def close(self) -> None:
        for stream in self.streams:
            stream.close()


# --------------------------------------------------------------------------- request pools


async def run_pool(
    client_count: int,
    host: str,
    port: int,
    work: Callable[[Client], Any],
    sources: Sequence[str] = (LOOPBACK,),
) -> None:
    clients = [Client(host, port, sources[i % len(sources)]) for i in range(client_count)]
    try:
        await asyncio.gather(*(work(client) for client in clients))
    finally:
        for client in clients:
            client.close()


async def register_all(
    host: str, port: int, agent_ids: Sequence[str], group: str, connections: int, timeout: float
) -> dict[str, Any]:
    pending = list(reversed(agent_ids))
    statuses: dict[str, int] = {}
    started = now()
    deadline = started + timeout

    async def worker(client: Client) -> None:
        while pending and now() < deadline:
            agent_id = pending.pop()
            body = json.dumps({"id": agent_id, "group": group}).encode()
            try:
                status, _ = await client.request("POST", "/api/v1/agents/register", body)
                key = str(status)
            except (OSError, ConnectionError) as exc:
                key = type(exc).__name__
            statuses[key] = statuses.get(key, 0) + 1

    await asyncio.wait_for(run_pool(connections, host, port, worker), timeout=timeout + 5)
    elapsed = now() - started
    ok = statuses.get("201", 0) + statuses.get("200", 0)
    return {
        "agents": len(agent_ids),
        "registered": ok,
        "statuses": statuses,
        "seconds": round(elapsed, 3),
        "per_s": round(ok / elapsed, 1) if elapsed else None,
    }


# --------------------------------------------------------------------------- scenarios


def agent_names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:06d}" for i in range(count)]


async def wait_settled(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def scenario_idle(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """(a) Open N idle streams: time to open, server RSS per open stream."""
    host, port = spec["host"], spec["port"]
    count = spec["n"]
    if spec.get("max"):
        count = max_streams_budget(spec, meter)
    agents = agent_names(spec["agent_prefix"], count)
    result: dict[str, Any] = {"n": count}
    snap = meter.snapshot()
    result["register"] = await register_all(
        host,
        port,
        agents,
        spec["group"],
        spec["register_connections"],
        spec["register_timeout_s"],
    )
    result["register"]["cpu"] = meter.delta(snap, meter.snapshot())
    await wait_settled(spec["settle_s"])  # let the server drop the pool's connections
    rss_before = meter.rss_kb()
    fds_before = [proc_open_fds(pid) for pid in meter.server_pids]
    fleet = Fleet(host, port)
    sources = spec.get("sources") or source_addresses(count)
    snap = meter.snapshot()
    result["open"] = await fleet.open(
        agents, spec["open_concurrency"], sources, spec["open_timeout_s"]
    )
    result["open"]["cpu"] = meter.delta(snap, meter.snapshot())
    result["open"]["sources"] = sources
    opened = result["open"]["opened"]
    rss_open = meter.rss_kb()
    await wait_settled(spec["settle_s"])
    rss_after = meter.rss_kb()
    result["held"] = sum(1 for stream in fleet.streams if not stream.ended)
    hold = spec.get("hold_s", 0)
    if hold:
        # Past the server's keepalive: every stream must have had a ping and still be open.
        await asyncio.sleep(hold)
        result["hold"] = {
            "seconds": hold,
            "still_open": sum(1 for stream in fleet.streams if not stream.ended),
            "pinged_and_open": sum(
                1 for stream in fleet.streams if not stream.ended and stream.pings
            ),
            "lost": sum(1 for stream in fleet.streams if stream.ended),
            "rss_kb": meter.rss_kb(),
        }
        result["held"] = result["hold"]["still_open"]
    result["rss_kb"] = {"before_open": rss_before, "just_opened": rss_open, "settled": rss_after}
    result["server_fds_before_open"] = fds_before
    result["server_fds_open"] = [proc_open_fds(pid) for pid in meter.server_pids]
    if opened:
        per_stream = (rss_after - rss_before) * 1024 / opened
        result["rss_bytes_per_stream"] = round(per_stream)
    cpu = result["open"]["cpu"]
    if opened:
        result["server_cpu_us_per_open"] = round(cpu["server_cpu_s"] * 1e6 / opened, 1)
        result["loadgen_cpu_us_per_open"] = round(cpu["loadgen_cpu_s"] * 1e6 / opened, 1)
    # Is the server still answering with every stream open? (one spare fd is budgeted)
    probe = Client(host, port)
    try:
        status, _ = await asyncio.wait_for(
            probe.request("POST", f"/api/v1/agents/{agents[0]}/heartbeat"), timeout=10
        )
        result["probe_status"] = status
    except (OSError, ConnectionError, TimeoutError) as exc:
        result["probe_status"] = type(exc).__name__
    finally:
        probe.close()
    fleet.close()
    return result


def max_streams_budget(spec: dict[str, Any], meter: Meter) -> int:
    """How many streams fit: the worker's free file descriptors, and ours."""
    margin = spec.get("fd_margin", 8)
    budgets = []
    for pid in meter.server_pids:
        limit, used = proc_nofile_limit(pid), proc_open_fds(pid)
        if limit is not None and used is not None:
            budgets.append(limit - used - margin)
    # Called before registering: the registration pool is closed again before opening.
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    own_used = proc_open_fds(os.getpid()) or 16
    budgets.append(soft - own_used - margin)
    budgets.append(spec.get("max_cap", 1_000_000))
    return max(1, min(budgets))


async def scenario_fanout(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """(b) Broadcasts to N open streams: latency POST -> receipt, exactly once, acks."""
    host, port, count = spec["host"], spec["port"], spec["n"]
    agents = agent_names(spec["agent_prefix"], count)
    result: dict[str, Any] = {"n": count}
    result["register"] = await register_all(
        host,
        port,
        agents,
        spec["group"],
        spec["register_connections"],
        spec["register_timeout_s"],
    )
    await wait_settled(spec["settle_s"])
    fleet = Fleet(host, port)
    sources = spec.get("sources") or source_addresses(count + spec["ack_connections"] + 8)
    result["open"] = await fleet.open(
        agents, spec["open_concurrency"], sources, spec["open_timeout_s"]
    )
    opened = result["open"]["opened"]
    result["rss_kb_streams_open"] = meter.rss_kb()
    if opened < count:
        fleet.close()
        result["error"] = f"only {opened} of {count} streams opened"
        return result

    # Acks: each event is acknowledged on receipt, through a pool of keep-alive connections
    # (an agent would use its own; 10 000 more sockets would not fit the fd budget).
    ack_queue: asyncio.Queue[tuple[str, str, float]] = asyncio.Queue()
    ack_latencies: list[float] = []
    ack_statuses: dict[str, int] = {}
    ack_times: list[float] = []
    acking = bool(spec["ack"])
    deferred: list[tuple[str, str, float]] = []
    if acking:

        def on_command(stream: Stream, command_id: bytes, received_at: float) -> None:
            ack_queue.put_nowait((stream.agent_id, command_id.decode(), received_at))

        def on_command_later(stream: Stream, command_id: bytes, received_at: float) -> None:
            deferred.append((stream.agent_id, command_id.decode(), received_at))

        inline = spec.get("ack_mode", "inline") == "inline"
        fleet.on_command = on_command if inline else on_command_later

    async def ack_worker(client: Client) -> None:
        while True:
            agent_id, command_id, received_at = await ack_queue.get()
            try:
                status, _ = await client.request(
                    "POST", f"/api/v1/agents/{agent_id}/commands/{command_id}/ack"
                )
                key = str(status)
            except (OSError, ConnectionError) as exc:
                key = type(exc).__name__
            done = now()
            ack_statuses[key] = ack_statuses.get(key, 0) + 1
            ack_latencies.append(done - received_at)
            ack_times.append(done)
            ack_queue.task_done()

    ack_task = None
    if acking:
        ack_task = asyncio.ensure_future(
            run_pool(spec["ack_connections"], host, port, ack_worker, sources)
        )

    poster = Client(host, port, sources[0])
    payload = json.dumps({"type": "deep-trace", "payload": spec["payload"]}).encode()
    broadcasts = []
    command_ids: list[str] = []
    snap = meter.snapshot()
    rss_peak = meter.rss_kb()
    for index in range(spec["broadcasts"]):
        fleet.expect((index + 1) * count)
        posted_at = now()
        post = asyncio.ensure_future(
            poster.request("POST", "/api/v1/agents/commands", payload, retry=False)
        )
        timed_out = False
        try:
            await asyncio.wait_for(fleet.target_reached.wait(), spec["delivery_timeout_s"])
        except TimeoutError:
            timed_out = True
        try:
            status, body = await asyncio.wait_for(post, spec["delivery_timeout_s"])
            answered_at = now()
            command_id = json.loads(body).get("commandId") if status == 202 else None
        except (OSError, ConnectionError, TimeoutError, ValueError) as exc:
            status, command_id, answered_at = type(exc).__name__, None, None
        broadcasts.append(
            {
                "status": status,
                "command_id": command_id,
                "post_answered_ms": round((answered_at - posted_at) * 1000, 2)
                if answered_at
                else None,
                "timed_out": timed_out,
                "posted_at": posted_at,
            }
        )
        rss_peak = max(rss_peak, meter.rss_kb())
        if command_id:
            command_ids.append(command_id)
        if timed_out:
            break
    delivery_end = now()
    delivery_cpu = meter.delta(snap, meter.snapshot())

    ack_drain_s = None
    if acking:
        drain_started = now()
        for item in deferred:
            ack_queue.put_nowait(item)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ack_queue.join(), spec["ack_timeout_s"])
        ack_drain_s = round(now() - drain_started, 3)
        ack_task.cancel()  # type: ignore[union-attr]
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await ack_task  # type: ignore[misc]
    total_cpu = meter.delta(snap, meter.snapshot())
    rss_peak = max(rss_peak, meter.rss_kb())

    # Latency: POST sent -> event read, on this process's clock.
    posted = {b["command_id"].encode(): b["posted_at"] for b in broadcasts if b["command_id"]}
    latencies = [t - posted[cid] for cid, t in fleet.receipts if cid in posted]
    unknown = sum(1 for cid, _ in fleet.receipts if cid not in posted)
    last_receipt: dict[bytes, float] = {}
    for cid, t in fleet.receipts:
        if t > last_receipt.get(cid, 0.0):
            last_receipt[cid] = t
    for b in broadcasts:
        cid = b["command_id"].encode() if b["command_id"] else None
        b["window_s"] = (
            round(last_receipt[cid] - b["posted_at"], 4) if cid in last_receipt else None
        )
    # Exactly once: every stream saw every command id exactly once.
    missing = duplicates = 0
    for stream in fleet.streams:
        for cid in posted:
            seen = stream.counts.get(cid, 0)
            missing += seen == 0
            duplicates += max(0, seen - 1)
    windows = [b["window_s"] for b in broadcasts if b["window_s"]]
    delivered = len(latencies)
    result.update(
        {
            "broadcasts": [{k: v for k, v in b.items() if k != "posted_at"} for b in broadcasts],
            "events_expected": count * spec["broadcasts"],
            "events_received": fleet.received,
            "events_per_s": round(delivered / sum(windows), 1) if windows else None,
            "events_per_s_definition": (
                "events received / sum over broadcasts of (last receipt - POST sent)"
            ),
            "latency_ms": percentiles(latencies),
            "exactly_once": missing == 0
            and duplicates == 0
            and unknown == 0
            and len(posted) == spec["broadcasts"],
            "missing": missing,
            "duplicates": duplicates,
            "unknown_ids": unknown,
            "streams_ended_early": fleet.ended,
            "delivery_cpu": delivery_cpu,
            "total_cpu": total_cpu,
            "rss_kb_peak": rss_peak,
            "delivery_span_s": round(delivery_end - broadcasts[0]["posted_at"], 3)
            if broadcasts
            else None,
        }
    )
    if delivered:
        result["server_cpu_us_per_event"] = round(total_cpu["server_cpu_s"] * 1e6 / delivered, 1)
        result["loadgen_cpu_us_per_event"] = round(total_cpu["loadgen_cpu_s"] * 1e6 / delivered, 1)
    if acking:
        ok = ack_statuses.get("200", 0)
        span = (max(ack_times) - broadcasts[0]["posted_at"]) if ack_times else None
        result["acks"] = {
            "sent": sum(ack_statuses.values()),
            "ok": ok,
            "statuses": ack_statuses,
            "all_ok": ok == delivered and delivered == count * spec["broadcasts"],
            "latency_ms": percentiles(ack_latencies),
            "per_s": round(ok / span, 1) if span else None,
            "drain_after_last_delivery_s": ack_drain_s,
            "done_after_first_post_s": round(span, 3) if span else None,
        }
    if spec.get("verify") and command_ids:
        result["tracking"] = await verify_tracking(host, port, command_ids, count, acking)
    poster.close()
    fleet.close()
    return result


async def verify_tracking(
    host: str, port: int, command_ids: Sequence[str], count: int, acked: bool
) -> dict[str, Any]:
    """Read each command back: every delivery should be ACKNOWLEDGED (or DELIVERED)."""
    client = Client(host, port)
    summaries = []
    try:
        for command_id in command_ids:
            status, body = await client.request("GET", f"/api/v1/commands/{command_id}")
            summaries.append(
                json.loads(body).get("summary") if status == 200 else {"status": status}
            )
    except (OSError, ConnectionError, ValueError) as exc:
        return {"ok": False, "error": repr(exc)}
    finally:
        client.close()
    field = "acknowledged" if acked else "delivered"
    ok = all(
        summary.get(field) == count and summary.get("targets") == count for summary in summaries
    )
    return {"ok": ok, "expected": {field: count}, "summaries": summaries}


async def scenario_heartbeat(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """(c) Concurrent keep-alive clients sending heartbeats for a fixed time."""
    host, port = spec["host"], spec["port"]
    agents = agent_names(spec["agent_prefix"], spec["agents"])
    result: dict[str, Any] = {
        "register": await register_all(
            host,
            port,
            agents,
            spec["group"],
            spec["register_connections"],
            spec["register_timeout_s"],
        )
    }
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    counter = 0
    measuring = False
    stop_at = 0.0

    async def worker(client: Client) -> None:
        nonlocal counter
        while now() < stop_at:
            agent_id = agents[counter % len(agents)]
            counter += 1
            t0 = now()
            try:
                status, _ = await client.request("POST", f"/api/v1/agents/{agent_id}/heartbeat")
                key = str(status)
            except (OSError, ConnectionError) as exc:
                key = type(exc).__name__
                await asyncio.sleep(0.01)
            if measuring:
                latencies.append(now() - t0)
                statuses[key] = statuses.get(key, 0) + 1

    clients = [Client(host, port) for _ in range(spec["connections"])]
    warmup, duration = spec["warmup_s"], spec["duration_s"]
    stop_at = now() + warmup + duration + 60  # reset below, once measuring starts
    tasks = [asyncio.ensure_future(worker(client)) for client in clients]
    await asyncio.sleep(warmup)
    latencies.clear()
    measuring = True
    snap = meter.snapshot()
    started = now()
    stop_at = started + duration
    await asyncio.sleep(duration)
    measuring = False
    cpu = meter.delta(snap, meter.snapshot())
    elapsed = now() - started
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    for client in clients:
        client.close()
    ok = statuses.get("204", 0)
    result.update(
        {
            "requests": sum(statuses.values()),
            "ok": ok,
            "errors": sum(statuses.values()) - ok,
            "statuses": statuses,
            "seconds": round(elapsed, 3),
            "rps": round(ok / elapsed, 1),
            "latency_ms": percentiles(latencies),
            "cpu": cpu,
            "server_cpu_us_per_request": round(cpu["server_cpu_s"] * 1e6 / ok, 1) if ok else None,
            "loadgen_cpu_us_per_request": round(cpu["loadgen_cpu_s"] * 1e6 / ok, 1) if ok else None,
        }
    )
    return result


SCENARIOS = {"idle": scenario_idle, "fanout": scenario_fanout, "heartbeat": scenario_heartbeat}


def raise_nofile() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    loopback_only(spec["host"])
    meter = Meter(spec["server_pids"], spec.get("extra_pids", {}))
    started, cpu0 = now(), own_cpu_seconds()
    result = await asyncio.wait_for(SCENARIOS[spec["kind"]](spec, meter), spec["overall_timeout_s"])
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["loadgen"] = {
        "cpu_s": round(own_cpu_seconds() - cpu0, 3),
        "wall_s": round(now() - started, 3),
        "max_rss_kb": usage.ru_maxrss,
        "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "pid": os.getpid(),
    }
    return result


def main() -> None:
    spec = json.loads(sys.stdin.read())
    raise_nofile()
    # Thousands of long-lived protocol objects would be rescanned by every full GC pass;
    # collect rarely (a bounded run does not need the memory back).
    gc.set_threshold(50_000, 50, 1000)
    try:
        result = asyncio.run(run(spec))
    except TimeoutError:
        result = {"error": f"scenario exceeded its time bound ({spec['overall_timeout_s']} s)"}
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

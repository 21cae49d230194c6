"""The load generator's HTTP/1.1 and SSE client: asyncio protocols over raw sockets.

Why this shape: a connection costs a protocol object and a transport (a few KB, tens of µs
per request) instead of a client library's machinery, so one core of load generation
can keep a 20 000-stream server busy.

HTTP/1.1 only, as the server speaks it: keep-alive connections for requests (one request
in flight per connection), ``Content-Length`` or chunked responses, and chunked event
streams parsed into SSE events. The parsers (``ResponseReader``, ``EventReader``) take
bytes as they come off the socket and share one chunked-body decoder (``dechunk``).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

LOOPBACK = "127.0.0.1"
# Linux: let connect() pick the source port, so several source addresses each get the
# whole ephemeral range (bind() alone would reserve a port per address up front).
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
# The server closes idle keep-alive connections after 5 s (gunicorn keepalive); reconnect
# before sending on a connection idle for longer than this.
IDLE_RECONNECT_S = 3.0

now = time.monotonic


def loopback_only(host: str) -> str:
    if not host.startswith("127."):
        raise SystemExit(f"refusing to talk to {host}: the benchmark uses 127.0.0.0/8 only")
    return host


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


# --------------------------------------------------------------------------- parsing


def dechunk(raw: bytearray, out: bytearray) -> bool:
    """Move the data of every complete chunk from ``raw`` to ``out``; True once the last came.

    ``raw`` keeps what is not decoded yet: a chunk still incomplete or, after the last
    chunk, whatever followed it. Chunk extensions are ignored; trailers are not supported
    (the server sends none).
    """
    pos = 0
    finished = False
    while True:
        line_end = raw.find(b"\r\n", pos)
        if line_end < 0:
            break
        size = int(raw[pos:line_end].split(b";", 1)[0], 16)
        stop = line_end + 2 + size
        if len(raw) < stop + 2:
            break
        pos = stop + 2
        if size == 0:
            finished = True
            break
        out += raw[line_end + 2 : stop]
    if pos:
        del raw[:pos]
    return finished


def _header_value(head: bytes, name: bytes) -> bytes | None:
    """Value of a header in a raw (lower-cased) response head, or None."""
    start = head.find(b"\r\n" + name + b":")
    if start < 0:
        return None
    start += len(name) + 3
    end = head.find(b"\r\n", start)
    return head[start : end if end >= 0 else len(head)].strip()


@dataclass(frozen=True)
class ResponseHead:
    """What a response's status line and headers say about its body and connection."""

    status: int
    content_length: int | None
    chunked: bool
    closes: bool


def take_head(buffer: bytearray) -> ResponseHead | None:
    """Remove a complete response head from the front of ``buffer`` (None: not all there yet)."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).lower()
    del buffer[: end + 4]
    length = _header_value(head, b"content-length")
    return ResponseHead(
        status=int(head[9:12]),
        content_length=None if length is None else int(length),
        chunked=b"chunked" in (_header_value(head, b"transfer-encoding") or b""),
        closes=_header_value(head, b"connection") == b"close",
    )


class ResponseReader:
    """Responses off one keep-alive connection, as (status, body) pairs."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.head: ResponseHead | None = None
        self.body = bytearray()  # a chunked body decoded so far
        self.keep_alive = True

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buffer += data
        responses = []
        while (response := self._next()) is not None:
            responses.append(response)
        return responses

    def _next(self) -> tuple[int, bytes] | None:
        if self.head is None:
            self.head = take_head(self.buffer)
            if self.head is None:
                return None
            if self.head.closes:
                self.keep_alive = False
        head, buffer = self.head, self.buffer
        if head.content_length is not None:
            if len(buffer) < head.content_length:
                return None
            body = bytes(buffer[: head.content_length])
            del buffer[: head.content_length]
        elif head.chunked:
            if not dechunk(buffer, self.body):
                return None
            body = bytes(self.body)
            self.body.clear()
        elif head.status in (204, 304) or 100 <= head.status < 200:
            body = b""
        else:  # body until close: not used by this server
            return None
        self.head = None
        return head.status, body


class EventReader:
    """An event-stream response, as SSE blocks (the text between two blank lines)."""

    def __init__(self) -> None:
        self.raw = bytearray()  # bytes off the socket, chunk framing included
        self.sse = bytearray()  # the body, framing removed
        self.head: ResponseHead | None = None

    def feed(self, data: bytes) -> list[bytes]:
        """The blocks completed by ``data``; none while the head is missing or not 200."""
        raw = self.raw
        raw += data
        if self.head is None:
            self.head = take_head(raw)
            if self.head is None:
                return []
        if self.head.status != 200:
            return []
        sse = self.sse
        if self.head.chunked:
            dechunk(raw, sse)
        else:
            sse += raw
            raw.clear()
        blocks = []
        start = 0
        while (end := sse.find(b"\n\n", start)) >= 0:
            blocks.append(bytes(sse[start:end]))
            start = end + 2
        if start:
            del sse[:start]
        return blocks


# --------------------------------------------------------------------------- requests

# Extra request headers, as (name, value) pairs: e.g. ``(("Authorization", "Bearer ..."),)``.
Headers = Sequence[tuple[str, str]]


def request_bytes(
    host_header: str, method: str, path: str, body: bytes | None = None, headers: Headers = ()
) -> bytes:
    """One HTTP/1.1 request as it goes on the wire: a JSON body, or ``Content-Length: 0``
    for a POST without one, and ``headers`` after the ones this client always sends."""
    head = f"{method} {path} HTTP/1.1\r\nHost: {host_header}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    elif method == "POST":
        head += "Content-Length: 0\r\n"
    for name, value in headers:
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value or ":" in name:
            raise ValueError(f"not a header line: {name!r}: {value!r}")
        head += f"{name}: {value}\r\n"
    return (head + "\r\n").encode() + (body or b"")


class HttpConnection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 client connection: one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = ResponseReader()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False
        self.last_used = now()

    @property
    def keep_alive(self) -> bool:
        return self.reader.keep_alive

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc!r}"))

    def data_received(self, data: bytes) -> None:
        for response in self.reader.feed(data):
            waiter, self.waiter = self.waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result(response)

    async def request(
        self,
        host_header: str,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Headers = (),
    ) -> tuple[int, bytes]:
        assert self.transport is not None
        data = request_bytes(host_header, method, path, body, headers)
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
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        retry: bool = True,
        headers: Headers = (),
    ) -> tuple[int, bytes]:
        for attempt in (0, 1):
            conn = await self.open()
            try:
                return await conn.request(self.host_header, method, path, body, headers)
            except ConnectionError:
                self.conn = None
                if not retry or attempt:
                    raise
        raise AssertionError("unreachable")

    async def open(self) -> HttpConnection:
        """The connection the next request goes on: opened now unless one is still fresh
        (call it ahead to keep the connection's opening out of a measured phase)."""
        conn = self.conn
        if (
            conn is None
            or conn.closed
            or not conn.keep_alive
            or now() - conn.last_used > (IDLE_RECONNECT_S)
        ):
            if conn is not None:
                conn.close()
            conn = self.conn = await connect(  # type: ignore[assignment]
                self.host, self.port, HttpConnection, self.source
            )
        assert conn is not None
        return conn

    def local_address(self) -> tuple[str, int] | None:
        """The host and port this client's open connection comes from; None: none open."""
        conn = self.conn
        if conn is None or conn.closed or conn.transport is None:
            return None
        host, port = conn.transport.get_extra_info("sockname")[:2]
        return host, port

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# --------------------------------------------------------------------------- event streams


class StreamListener(Protocol):
    """Who hears what an ``EventStream`` receives (the fleet it belongs to)."""

    host_header: str

    def on_event(self, stream: EventStream, command_id: bytes, received_at: float) -> None: ...

    def on_end(self, stream: EventStream) -> None: ...


class EventStream(asyncio.Protocol):
    """One agent's event stream: ready once the opening arrived; counts commands and pings."""

    def __init__(self, listener: StreamListener, agent_id: str) -> None:
        self.listener = listener
        self.agent_id = agent_id
        self.transport: asyncio.Transport | None = None
        self.reader = EventReader()
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.counts: dict[bytes, int] = {}
        self.pings = 0
        self.ended = False
        self.error: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(  # type: ignore[attr-defined]
            f"GET /api/v1/agents/{self.agent_id}/events HTTP/1.1\r\n"
            f"Host: {self.listener.host_header}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.listener.on_end(self)
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"stream closed before ready: {exc!r}"))

    def data_received(self, data: bytes) -> None:
        received_at = now()
        blocks = self.reader.feed(data)
        head = self.reader.head
        if head is not None and head.status != 200:
            if self.error is None:
                self.error = f"HTTP {head.status}"
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(f"stream answered {head.status}"))
                self.close()
            return
        for block in blocks:
            if block.startswith(b"id: "):
                command_id = block[4 : block.find(b"\n")]
                counts = self.counts
                counts[command_id] = counts.get(command_id, 0) + 1
                self.listener.on_event(self, command_id, received_at)
            elif block.startswith(b"retry:"):
                if not self.ready.done():
                    self.ready.set_result(None)
            elif block.startswith(b":"):
                self.pings += 1

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

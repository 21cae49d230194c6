"""This process's open operator event streams (``GET /api/v1/events``), and their writer.

Every operator stream gets every event (``agent`` events only of its group, when it asked
for one), so there is no per-key routing: a frame is encoded once and the same bytes go on
each stream's bounded queue. A stream whose queue is full has stopped reading: it is
ended, as a slow agent stream is, and its client reconnects and gets the fleet afresh.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator

from ..core.ports import StreamGauge
from .queued import QueuedStream
from .sse import OPENING, PING
from .stream_queue import Full
from .writer import batches

log = logging.getLogger(__name__)


class OperatorStream(QueuedStream):
    __slots__ = ("fleet", "group")

    def __init__(self, queue_size: int, sock: socket.socket | None, group: str | None) -> None:
        super().__init__(queue_size, sock)
        self.group = group
        # The fleet counts this stream was last sent, so that it is sent only a change.
        self.fleet: dict[str, int] | None = None

    def offer(self, frame: bytes) -> None:
        """Queue one event; a full queue means the client stopped reading: end the stream."""
        if self.closed:
            return
        try:
            self.queue.put_nowait(frame)
        except Full:
            log.warning(
                "operator stream%s: queue full (%d events), ending the stream",
                f" (group {self.group})" if self.group else "",
                self.queue.maxsize,
            )
            self.end()


class OperatorHub:
    def __init__(self, queue_size: int) -> None:
        self._queue_size = queue_size
        self._streams: list[OperatorStream] = []
        self._closing = False
        # Told when the last stream of this process closes (nothing to send to any more).
        self.on_idle: Callable[[], None] | None = None
        self.gauge: StreamGauge | None = None

    def __len__(self) -> int:
        return len(self._streams)

    def open(self, sock: socket.socket | None, group: str | None) -> OperatorStream:
        stream = OperatorStream(self._queue_size, sock, group)
        if self.gauge is not None:
            self.gauge.inc()
        if self._closing:
            stream.end()  # the worker is stopping: answer, then end at once
            return stream
        self._streams.append(stream)
        log.info("operator stream opened (%d open)", len(self._streams))
        return stream

    def close(self, stream: OperatorStream) -> None:
        """Forget a stream that ended; called once per ``open`` (the writer's ``finally``)."""
        stream.closed = True
        if self.gauge is not None:
            self.gauge.dec()
        if stream in self._streams:
            self._streams.remove(stream)
            log.info("operator stream closed (%d open)", len(self._streams))
            if not self._streams and self.on_idle is not None:
                self.on_idle()

    def streams(self) -> list[OperatorStream]:
        return list(self._streams)

    def broadcast(self, frame: bytes, group: str | None = None) -> None:
        """Queue the frame on every stream; with ``group`` (an ``agent`` event), only on the
        streams that asked for no group or for that one."""
        for stream in list(self._streams):
            if group is None or stream.group in (None, group):
                stream.offer(frame)

    def end_all(self) -> None:
        """End every stream, and every stream opened from now on (worker shutdown)."""
        self._closing = True
        for stream in list(self._streams):
            stream.end()


def operator_event_stream(
    hub: OperatorHub,
    sock: socket.socket | None,
    group: str | None,
    keepalive: float,
    first: tuple[bytes, dict[str, int]],
    on_opened: Callable[[OperatorStream], None],
) -> Iterator[bytes]:
    """The response body: the opening bytes and ``first`` (the fleet event, read before the
    answer started, and its counts), then what the stream is sent, with a ping when idle.
    ``on_opened`` runs once the stream is registered (it asks for the counts again, in
    case they changed in between)."""
    stream = hub.open(sock, group)
    try:
        frame, stream.fleet = first
        on_opened(stream)
        yield OPENING + frame
        for batch in batches(stream, keepalive, "operator stream"):
            yield b"".join(batch) if batch else PING
    finally:
        hub.close(stream)

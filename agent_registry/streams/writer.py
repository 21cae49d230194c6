"""The body of one SSE response: a generator fed from the stream's queue.

It is handed everything it needs as arguments (no request context is kept alive for the
hours a stream lasts). Cleanup is in ``finally``, which runs when the client leaves
(a failed write closes the generator) or when the stream is ended.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .hub import StreamHub, Subscription, is_command_key
from .queued import END, QueuedStream
from .sse import OPENING, PING
from .stream_queue import Empty

log = logging.getLogger(__name__)

OnWritten = Callable[[str, Sequence[str]], None]
OnOpened = Callable[[Subscription], None]


def event_stream(
    hub: StreamHub,
    agent_id: str,
    sock: socket.socket | None,
    keepalive: float,
    on_written: OnWritten,
    on_opened: OnOpened | None = None,
    generation: int | None = None,
) -> Iterator[bytes]:
    """``on_opened`` runs once the stream is registered, before its first byte: it may
    queue what the stream is owed on connect (``on_connect.py``). ``generation`` is that of
    the agent token that opened it (auth on)."""
    subscription = hub.open(agent_id, sock, generation)
    try:
        if on_opened is not None and not subscription.closed:
            on_opened(subscription)
        # Registered before the first byte: whoever reads this will not miss a command.
        yield OPENING
        for batch in batches(subscription, keepalive, f"agent {agent_id}", {"agent_id": agent_id}):
            if not batch:
                yield PING
                continue
            yield batch[0][1] if len(batch) == 1 else b"".join(frame for _, frame in batch)
            written = [key for key, _ in batch if is_command_key(key)]
            if written:
                _record(on_written, agent_id, written)
    finally:
        hub.close(subscription)


def batches(
    stream: QueuedStream, keepalive: float, who: str, log_extra: dict[str, str] | None = None
) -> Iterator[list[Any]]:
    """What the stream's writer writes: each batch of items waiting on its queue (one write
    for a burst: one wake-up), or an empty batch after ``keepalive`` seconds with nothing
    (write a ping then). Ends when the stream is ended, or the client went away (``who``
    names it in the log)."""
    queue = stream.queue
    while True:
        try:
            item = queue.get(timeout=keepalive)
        except Empty:
            if stream.peer_gone():
                log.info("%s: client went away", who, extra=log_extra)
                return
            yield []
            continue
        batch: list[Any] = []
        ended = False
        while True:
            if item is END:
                ended = True
                break
            batch.append(item)
            if queue.empty():
                break
            item = queue.get_nowait()
        if batch:
            yield batch
        if ended or stream.closed:
            return


def _record(on_written: OnWritten, agent_id: str, command_ids: Sequence[str]) -> None:
    """The bytes are out; failing to record it must not end the stream."""
    try:
        on_written(agent_id, command_ids)
    except Exception:
        log.exception(
            "agent %s: could not record delivery of %s",
            agent_id,
            command_ids,
            extra={"agent_id": agent_id},
        )

"""The body of one SSE response: a generator fed from the stream's queue.

It is handed everything it needs as arguments (no request context is kept alive for the
hours a stream lasts). Cleanup is in ``finally``, which runs when the client leaves
(a failed write closes the generator) or when the stream is ended.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator, Sequence

from .hub import END, StreamHub, Subscription, is_command_key
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
    queue = subscription.queue
    try:
        if on_opened is not None and not subscription.closed:
            on_opened(subscription)
        # Registered before the first byte: whoever reads this will not miss a command.
        yield OPENING
        while True:
            try:
                item = queue.get(timeout=keepalive)
            except Empty:
                if subscription.peer_gone():
                    log.info("agent %s: client went away", agent_id, extra={"agent_id": agent_id})
                    return
                yield PING
                continue
            # Write everything already waiting in one go: one wake-up for a burst.
            command_ids: list[str] = []
            frames: list[bytes] = []
            ended = False
            while True:
                if item is END:
                    ended = True
                    break
                command_ids.append(item[0])
                frames.append(item[1])
                if queue.empty():
                    break
                item = queue.get_nowait()
            if frames:
                yield frames[0] if len(frames) == 1 else b"".join(frames)
                written = [key for key in command_ids if is_command_key(key)]
                if written:
                    _record(on_written, agent_id, written)
            if ended or subscription.closed:
                return
    finally:
        hub.close(subscription)


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

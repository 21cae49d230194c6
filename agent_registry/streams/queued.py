"""What every open stream is, agent or operator: a bounded queue that its writer reads, the
client's socket, and the ways to end it."""

from __future__ import annotations

import contextlib
import select
import socket
from collections.abc import Callable

from gevent.monkey import get_original

from .stream_queue import Full, StreamQueue

# Put on a queue to end its stream.
END = None


class QueuedStream:
    __slots__ = ("closed", "queue", "socket")

    def __init__(self, queue_size: int, sock: socket.socket | None) -> None:
        self.queue = StreamQueue(queue_size)
        self.socket = sock
        self.closed = False

    def end(self) -> None:
        """Make the stream finish: wake its writer, or cut the socket it is stuck on."""
        if self.closed:
            return
        self.closed = True
        try:
            self.queue.put_nowait(END)
        except Full:
            self.abort()

    def abort(self) -> None:
        """Shut the socket down so a writer blocked on a client that stopped reading fails."""
        if self.socket is not None:
            with contextlib.suppress(OSError):
                self.socket.shutdown(socket.SHUT_RDWR)

    def peer_gone(self) -> bool:
        """True when the client has closed its end (readable with nothing to read).

        An SSE client sends nothing after its request, so a readable socket means
        end-of-file. Checked at each keepalive because the first write after the peer
        left usually still succeeds.
        """
        if self.socket is None:
            return False
        try:
            poller = _blocking_poll()
            poller.register(self.socket.fileno(), select.POLLIN)
            if not poller.poll(0):
                return False
            return self.socket.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True


def _blocking_poll() -> select.poll:
    """The OS's poll(), even under gevent's monkey-patching: with a zero timeout it never
    blocks, and unlike select() it works for descriptors above 1023 (busy workers)."""
    poll: Callable[[], select.poll] = get_original("select", "poll")
    return poll()

"""One connection to an agent's event stream (httpx + httpx-sse), abortable from any thread.

A blocked socket read does not notice that another thread wants to stop, and closing an
httpx response from another thread is not safe. ``abort()`` shuts the socket down instead:
the read returns at once (under gevent too) and the reading thread unwinds normally.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import httpx
from httpx_sse import EventSource, ServerSentEvent

from .api import ApiError, bearer

log = logging.getLogger(__name__)


class StreamConnection:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._aborted = threading.Event()

    def events(self) -> Iterator[ServerSentEvent]:
        """Events as they arrive (comments such as ``: ping`` are skipped by the parser)."""
        return EventSource(self.response).iter_sse()

    @property
    def aborted(self) -> bool:
        return self._aborted.is_set()

    def abort(self) -> None:
        """End the stream from any thread: the reader sees a closed connection."""
        self._aborted.set()
        network = self.response.extensions.get("network_stream")
        sock = network.get_extra_info("socket") if network is not None else None
        if sock is None:
            return
        with suppress(OSError):  # already closed: nothing left to wake
            sock.shutdown(socket.SHUT_RDWR)


@contextmanager
def open_stream(
    http: httpx.Client,
    url: str,
    *,
    last_event_id: str | None,
    read_timeout: float,
    connect_timeout: float = 10.0,
    token: str | None = None,
) -> Iterator[StreamConnection]:
    """GET the stream; an error answer raises :class:`ApiError` before anything is read.

    ``read_timeout`` should exceed the server's keepalive: a connection that stays silent
    longer than that is dead (the server pings every ``keepaliveSeconds`` while idle).
    """
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-store", **bearer(token)}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    timeout = httpx.Timeout(connect_timeout, read=read_timeout)
    with http.stream("GET", url, headers=headers, timeout=timeout) as response:
        if response.status_code >= 400:
            response.read()
            raise ApiError.from_response(response)
        yield StreamConnection(response)

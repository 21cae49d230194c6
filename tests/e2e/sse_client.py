"""A background SSE listener for end-to-end tests, built on httpx + httpx-sse."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, connect_sse

from tests.e2e.many_streams import client_port


class StreamListener:
    """Opens an agent's event stream in a thread and collects its events.

    ``ready`` is set once the opening ``retry:`` frame arrived: from then on no command
    posted is missed. ``ended`` is set when the server closes the stream.
    """

    def __init__(self, base_url: str, agent_id: str, headers: dict[str, str] | None = None):
        self.url = f"{base_url}/api/v1/agents/{agent_id}/events"
        self.headers = headers or {}
        self.events: queue.Queue[ServerSentEvent] = queue.Queue()
        self.retry: int | None = None
        self.ready = threading.Event()
        self.ended = threading.Event()
        self.error: BaseException | None = None
        self._response: httpx.Response | None = None
        self._client = httpx.Client(timeout=httpx.Timeout(5.0, read=None))
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, timeout: float = 5.0) -> StreamListener:
        self._thread.start()
        if not self.ready.wait(timeout):
            raise AssertionError(f"stream {self.url} not ready: {self.error!r}")
        return self

    def _run(self) -> None:
        try:
            with connect_sse(self._client, "GET", self.url, headers=self.headers) as source:
                self._response = source.response
                for sse in source.iter_sse():
                    if sse.retry is not None:
                        self.retry = sse.retry
                        self.ready.set()
                    # httpx-sse re-emits the last id on every comment-only block (pings);
                    # per the SSE spec an event with no data is not dispatched.
                    if sse.data:
                        self.events.put(sse)
        except (httpx.HTTPError, RuntimeError) as exc:
            self.error = exc
        finally:
            self.ended.set()

    def next_command(self, timeout: float = 5.0) -> dict[str, Any]:
        sse = self.events.get(timeout=timeout)
        return {"id": sse.id, "event": sse.event, "data": json.loads(sse.data)}

    def commands_within(self, seconds: float) -> list[dict[str, Any]]:
        found = []
        try:
            while True:
                found.append(self.next_command(timeout=seconds))
        except queue.Empty:
            return found

    @property
    def client_port(self) -> int:
        """The local port of the stream's connection (to find the worker holding it)."""
        assert self._response is not None
        return client_port(self._response)

    def drop(self) -> None:
        """Cut the connection the way a crashed agent would (no clean HTTP close)."""
        if self._response is not None:
            stream = self._response.extensions["network_stream"]
            sock = stream.get_extra_info("socket")
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.drop()
        self._thread.join(5)
        self._client.close()

    def __enter__(self) -> StreamListener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class OperatorListener(StreamListener):
    """Opens the operator event stream (``GET /api/v1/events``) and collects its events."""

    def __init__(self, base_url: str, query: str = "", headers: dict[str, str] | None = None):
        super().__init__(base_url, "", headers)
        self.url = f"{base_url}/api/v1/events{query}"
        self.seen: list[dict[str, Any]] = []

    def until(
        self, check: Callable[[dict[str, Any]], bool], within: float = 10.0
    ) -> dict[str, Any]:
        """The first event (``{"event", "data"}``) that passes ``check``, read within
        ``within`` seconds; every event read is kept in ``seen``."""
        deadline = time.monotonic() + within
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.url}: no such event within {within} s")
            try:
                found = self.next_command(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(found)
            if check(found):
                return found

"""The operator event stream read through the Flask test client, event by event.

Reading runs the stream's generator in the test's greenlet: it waits on the stream's
queue, which lets the server's flusher greenlet run. With a short keepalive every read
returns within it (a ping, at worst), so ``until`` can poll with a deadline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gevent
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from agent_registry.streams.sse import OPENING


@dataclass(frozen=True)
class Event:
    event: str
    data: dict[str, Any]
    # When the test read it (monotonic seconds), to measure the pace of events.
    read_at: float = field(default=0.0, compare=False)


def parse(block: bytes) -> Event | None:
    """One SSE block (without its blank line); None for a comment-only block."""
    fields: dict[str, str] = {}
    for line in block.decode().split("\n"):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(": ")
        fields[name] = value
    if "data" not in fields:
        return None
    return Event(fields.get("event", "message"), json.loads(fields["data"]), time.monotonic())


class OperatorStream:
    def __init__(self, client: FlaskClient, query: str = "", headers: Any = None) -> None:
        self.response: TestResponse = client.get(
            f"/api/v1/events{query}", headers=headers, buffered=False
        )
        assert self.response.status_code == 200, self.response.get_data(as_text=True)
        assert self.response.mimetype == "text/event-stream"
        self._chunks: Iterator[bytes] = iter(self.response.response)
        self._ready: list[Event] = []
        self.pings = 0
        self.ended = False
        first = next(self._chunks)
        assert first.startswith(OPENING)
        self._buffer = first[len(OPENING) :]
        self._parse()

    def _read(self) -> None:
        """Read one more chunk (an event, a burst, or a ping) and parse what is complete;
        sets ``ended`` at the end."""
        try:
            self._buffer += next(self._chunks)
        except StopIteration:
            self.ended = True
        self._parse()

    def _parse(self) -> None:
        while b"\n\n" in self._buffer:
            block, self._buffer = self._buffer.split(b"\n\n", 1)
            parsed = parse(block)
            if parsed is None:
                self.pings += block == b": ping"
            else:
                self._ready.append(parsed)

    def next_event(self, within: float = 5.0) -> Event:
        return self.until(lambda _: True, within)[-1]

    def until(self, check: Callable[[Event], bool], within: float = 5.0) -> list[Event]:
        """Events read until one passes ``check`` (it included, last)."""
        deadline = time.monotonic() + within
        taken: list[Event] = []
        while True:
            while self._ready:
                found = self._ready.pop(0)
                taken.append(found)
                if check(found):
                    return taken
            assert not self.ended, f"the stream ended; read {taken}"
            assert time.monotonic() < deadline, f"no such event within {within} s; read {taken}"
            self._read()

    def read_for(self, seconds: float) -> list[Event]:
        """Every event that arrives within ``seconds`` (for "this is all there was")."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.ended:
            self._read()
        taken, self._ready = self._ready, []
        return taken

    def read_to_end(self, within: float = 5.0) -> list[Event]:
        deadline = time.monotonic() + within
        while not self.ended:
            assert time.monotonic() < deadline, "the stream did not end"
            self._read()
        taken, self._ready = self._ready, []
        return taken

    def close(self) -> None:
        self.response.close()
        gevent.sleep(0)  # let the flusher see that nobody listens any more


def settle(check: Callable[[], object], within: float = 5.0) -> bool:
    """Poll ``check`` while letting the server's greenlets run (the test process is not
    monkey-patched: ``time.sleep`` would hold them up)."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        gevent.sleep(0.01)
    return True


def of(kind: str, **fields: Any) -> Callable[[Event], bool]:
    """A check: an event of this kind whose data has these values."""

    def check(found: Event) -> bool:
        return found.event == kind and all(found.data.get(k) == v for k, v in fields.items())

    return check

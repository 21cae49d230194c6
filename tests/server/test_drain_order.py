"""SIGTERM marks the worker's drain before gunicorn marks the worker not alive: "not
alive" is what turns /readyz to "draining", so every answer that says so must also close
its connection (tests/e2e/test_operations_e2e.py sees it end to end)."""

from __future__ import annotations

import signal

import gevent

from agent_registry.server.gunicorn_worker import Drain, Worker


class RecordingWorker(Worker):
    """A worker reduced to what ``handle_exit`` touches; records when ``alive`` changes."""

    def __init__(self) -> None:  # gunicorn's own needs an arbiter and a socket
        self.drain = Drain()
        self._alive = True
        self.changes: list[tuple[bool, bool]] = []  # (alive, drain active then)

    @property  # type: ignore[override]
    def alive(self) -> bool:
        return self._alive

    @alive.setter
    def alive(self, value: bool) -> None:
        self.changes.append((value, self.drain.active))
        self._alive = value


def test_the_drain_is_active_before_the_worker_stops_being_alive() -> None:
    worker = RecordingWorker()

    worker.handle_exit(signal.SIGTERM, None)

    assert worker.changes == [(False, True)]
    gevent.sleep(0)  # the greenlet that hangs up idle connections (none here) ran
    assert worker.drain.active

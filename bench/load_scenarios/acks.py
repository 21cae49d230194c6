"""Acknowledging the events a fleet receives, and what the acks cost and took."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from ..http_client import Client, EventStream, now
from ..metering import percentiles
from .fleet import open_one_at_a_time, pool_clients, run_clients

Ack = tuple[str, str, float]  # agent id, command id, when the event was read


class Acker:
    """Acks each event through a pool of keep-alive connections.

    An agent would use its own connection; 10 000 more sockets would not fit the fd budget.
    ``inline`` acks on receipt (acks compete with the next broadcast); otherwise the acks
    wait until ``drain``, after every broadcast was delivered.

    The connections open one after the other before the first ack (``open``), as a fleet's
    keep-alive connections would have: opened together on the first event, mid-broadcast,
    they came as one burst that the server could hand mostly to one worker, and then the
    run measured that worker's spread of 64 clients, not the store (docs/performance.md).
    """

    def __init__(
        self, host: str, port: int, connections: int, sources: Sequence[str], inline: bool
    ) -> None:
        self.queue: asyncio.Queue[Ack] = asyncio.Queue()
        self.deferred: list[Ack] = []
        self.latencies: list[float] = []
        self.statuses: dict[str, int] = {}
        self.times: list[float] = []
        self.on_command = self._ack_now if inline else self._ack_later
        self.clients = pool_clients(connections, host, port, sources)
        self.task: asyncio.Future[None] | None = None

    async def open(self) -> None:
        """Open the connections one at a time, then start acking what is queued. Each opens
        with a request, so that a worker has accepted it before the next one connects."""
        await open_one_at_a_time(self.clients)
        self.task = asyncio.ensure_future(run_clients(self.clients, self._worker))

    def _ack_now(self, stream: EventStream, command_id: bytes, received_at: float) -> None:
        self.queue.put_nowait((stream.agent_id, command_id.decode(), received_at))

    def _ack_later(self, stream: EventStream, command_id: bytes, received_at: float) -> None:
        self.deferred.append((stream.agent_id, command_id.decode(), received_at))

    async def _worker(self, client: Client) -> None:
        while True:
            agent_id, command_id, received_at = await self.queue.get()
            try:
                status, _ = await client.request(
                    "POST", f"/api/v1/agents/{agent_id}/commands/{command_id}/ack"
                )
                key = str(status)
            except (OSError, ConnectionError) as exc:
                key = type(exc).__name__
            done = now()
            self.statuses[key] = self.statuses.get(key, 0) + 1
            self.latencies.append(done - received_at)
            self.times.append(done)
            self.queue.task_done()

    async def settle(self, timeout: float) -> bool:
        """Wait (up to ``timeout``) until every ack queued so far was answered; whether they
        were. The pool stays open for more."""
        try:
            await asyncio.wait_for(self.queue.join(), timeout)
        except TimeoutError:
            return False
        return True

    async def drain(self, timeout: float) -> float:
        """Send what was deferred, wait (up to ``timeout``) for every ack; seconds it took."""
        if self.task is None:
            await self.open()
        started = now()
        assert self.task is not None
        for item in self.deferred:
            self.queue.put_nowait(item)
        await self.settle(timeout)
        drained = round(now() - started, 3)
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
        return drained

    def figures(
        self, delivered: int, expected: int, first_post: float | None, drain_s: float | None
    ) -> dict[str, Any]:
        """Counts, latency and rate; ``first_post`` is when the first broadcast was sent."""
        ok = self.statuses.get("200", 0)
        span = (max(self.times) - first_post) if self.times and first_post is not None else None
        return {
            "sent": sum(self.statuses.values()),
            "ok": ok,
            "statuses": self.statuses,
            "all_ok": ok == delivered and delivered == expected,
            "latency_ms": percentiles(self.latencies),
            "per_s": round(ok / span, 1) if span else None,
            "drain_after_last_delivery_s": drain_s,
            "done_after_first_post_s": round(span, 3) if span else None,
        }

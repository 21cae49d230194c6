"""The simulated agents: their names, their registration, and their open event streams."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, cast

from harness.procfs import held_per_process

from ..http_client import LOOPBACK, Client, EventStream, Headers, connect, now
from ..metering import percentiles


def agent_names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:06d}" for i in range(count)]


async def wait_settled(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def run_pool(
    client_count: int,
    host: str,
    port: int,
    work: Callable[[Client], Any],
    sources: Sequence[str] = (LOOPBACK,),
) -> None:
    """Run ``work`` once per keep-alive client, all at once; close the clients after."""
    await run_clients(pool_clients(client_count, host, port, sources), work)


def pool_clients(
    client_count: int, host: str, port: int, sources: Sequence[str] = (LOOPBACK,)
) -> list[Client]:
    """Keep-alive clients spread over the ``sources`` addresses, not yet connected."""
    return [Client(host, port, sources[i % len(sources)]) for i in range(client_count)]


async def run_clients(clients: Sequence[Client], work: Callable[[Client], Any]) -> None:
    """Run ``work`` once per client, all at once; close the clients after."""
    try:
        await asyncio.gather(*(work(client) for client in clients))
    finally:
        for client in clients:
            client.close()


async def open_one_at_a_time(clients: Sequence[Client]) -> None:
    """Open each keep-alive connection with a request, answered before the next connects:
    opened in a burst, one worker could accept most of them (docs/performance.md)."""
    for client in clients:
        await client.request("GET", "/healthz")


def held_per_worker(port: int, pids: list[int], clients: Sequence[Client]) -> list[int]:
    """How many of ``clients``' open connections each worker holds, fewest first (a worker
    batches only its own requests' round trips to a Redis store). Each connection is found
    by its own address: counting every connection before and after opening these took in
    others that closed meanwhile (f's idle ack connections, closed by the server's
    keep-alive timeout, gave spreads such as -35 / 35)."""
    addresses = [address for client in clients if (address := client.local_address())]
    return sorted(held_per_process(port, addresses, pids).values())


def bearer(token: str) -> Headers:
    return (("Authorization", f"Bearer {token}"),)


async def register_all(
    spec: dict[str, Any], agent_ids: Sequence[str], tokens: dict[str, str] | None = None
) -> dict[str, Any]:
    """Register every agent in the spec's group, over its pool of keep-alive connections.

    With ``spec["enrollment_token"]`` (a server with auth on) each registration carries it,
    and ``tokens`` (if given) receives each agent's ``accessToken`` from the answer.
    """
    host, port, group = spec["host"], spec["port"], spec["group"]
    connections, timeout = spec["register_connections"], spec["register_timeout_s"]
    enrollment = spec.get("enrollment_token")
    headers = bearer(enrollment) if enrollment else ()
    pending = list(reversed(agent_ids))
    statuses: dict[str, int] = {}
    started = now()
    deadline = started + timeout

    async def worker(client: Client) -> None:
        while pending and now() < deadline:
            agent_id = pending.pop()
            body = json.dumps({"id": agent_id, "group": group}).encode()
            try:
                status, answer = await client.request(
                    "POST", "/api/v1/agents/register", body, headers=headers
                )
                key = str(status)
                if tokens is not None and status in (200, 201):
                    token = json.loads(answer).get("accessToken")
                    if token:
                        tokens[agent_id] = token
            except (OSError, ConnectionError) as exc:
                key = type(exc).__name__
            statuses[key] = statuses.get(key, 0) + 1

    await asyncio.wait_for(run_pool(connections, host, port, worker), timeout=timeout + 5)
    elapsed = now() - started
    ok = statuses.get("201", 0) + statuses.get("200", 0)
    return {
        "agents": len(agent_ids),
        "registered": ok,
        **({"with_enrollment_token": True} if enrollment else {}),
        **({"access_tokens": len(tokens)} if tokens is not None else {}),
        "statuses": statuses,
        "seconds": round(elapsed, 3),
        "per_s": round(ok / elapsed, 1) if elapsed else None,
    }


class Fleet:
    """N open streams and what they received."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.host_header = f"{host}:{port}"
        self.streams: list[EventStream] = []
        self.received = 0
        self.receipts: list[tuple[bytes, float]] = []
        self.ended = 0
        self.target = 0
        self.target_reached: asyncio.Event = asyncio.Event()
        self.on_command: Callable[[EventStream, bytes, float], None] | None = None

    def on_event(self, stream: EventStream, command_id: bytes, received_at: float) -> None:
        self.received += 1
        self.receipts.append((command_id, received_at))
        if self.on_command is not None:
            self.on_command(stream, command_id, received_at)
        if self.received >= self.target:
            self.target_reached.set()

    def on_end(self, stream: EventStream) -> None:
        self.ended += 1

    def expect(self, total: int) -> None:
        self.target = total
        self.target_reached.clear()
        if self.received >= total:
            self.target_reached.set()

    async def open(
        self, agent_ids: Sequence[str], concurrency: int, sources: Sequence[str], timeout: float
    ) -> dict[str, Any]:
        """Open a stream per agent, ``concurrency`` opening at once; each waits for ready."""
        queue = list(reversed(agent_ids))
        failures: dict[str, int] = {}
        ready_times: list[float] = []
        started = now()
        deadline = started + timeout
        index = 0

        async def opener() -> None:
            nonlocal index
            while queue and now() < deadline:
                agent_id = queue.pop()
                source = sources[index % len(sources)]
                index += 1
                t0 = now()
                stream: EventStream | None = None
                try:
                    factory = partial(EventStream, self, agent_id)
                    opening = connect(self.host, self.port, factory, source)
                    stream = cast(
                        EventStream,
                        await asyncio.wait_for(opening, timeout=max(0.1, deadline - now())),
                    )
                    self.streams.append(stream)
                    await asyncio.wait_for(stream.ready, timeout=max(0.1, deadline - now()))
                    ready_times.append(now() - t0)
                except (OSError, TimeoutError, ConnectionError) as exc:
                    if stream is not None:
                        stream.close()
                        self.streams.remove(stream)
                    key = type(exc).__name__
                    if isinstance(exc, OSError) and exc.errno:
                        key += f" errno {exc.errno}"
                    failures[key] = failures.get(key, 0) + 1

        await asyncio.gather(*(opener() for _ in range(concurrency)))
        elapsed = now() - started
        opened = len(ready_times)
        return {
            "attempted": len(agent_ids),
            "opened": opened,
            "not_attempted": len(queue),
            "failures": failures,
            "time_to_open_s": round(elapsed, 3),
            "opens_per_s": round(opened / elapsed, 1) if elapsed else None,
            "open_latency_ms": percentiles(ready_times),
        }

    def close(self) -> None:
        for stream in self.streams:
            stream.close()

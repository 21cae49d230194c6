"""Many concurrent SSE streams from one test process: asyncio, httpx and httpx-sse."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import httpx
from httpx_sse import aconnect_sse


async def register_all(client: httpx.AsyncClient, agent_ids: list[str], group: str) -> None:
    """Register on a client of its own: the server closes idle keep-alive connections
    after 2 s, and a stream opened on such a pooled connection would fail at once."""
    async with async_client(str(client.base_url), 100) as own:
        for start in range(0, len(agent_ids), 100):
            answers = await asyncio.gather(
                *(
                    own.post("/api/v1/agents/register", json={"id": agent_id, "group": group})
                    for agent_id in agent_ids[start : start + 100]
                )
            )
            assert all(answer.status_code in (200, 201) for answer in answers)


async def follow(
    client: httpx.AsyncClient,
    agent_id: str,
    ready: asyncio.Queue[str],
    received: Counter[str],
    ended: set[str],
    ports: dict[str, int],
) -> None:
    """Follow one stream: note its local port, report readiness, count command ids, note
    when the server ends it."""
    async with aconnect_sse(client, "GET", f"/api/v1/agents/{agent_id}/events") as source:
        ports[agent_id] = client_port(source.response)
        async for sse in source.aiter_sse():
            if sse.retry is not None:
                await ready.put(agent_id)
            if sse.data:
                received[json.loads(sse.data)["commandId"]] += 1
    ended.add(agent_id)


def client_port(response: httpx.Response) -> int:
    """The local port of the connection a response came on (to find the worker holding it)."""
    return response.extensions["network_stream"].get_extra_info("client_addr")[1]


class Fleet:
    """N open streams; ``received`` counts each command id over all of them, ``ports`` is
    each stream's local port."""

    def __init__(self, client: httpx.AsyncClient, agent_ids: list[str]) -> None:
        self.client = client
        self.agent_ids = agent_ids
        self.received: Counter[str] = Counter()
        self.ended: set[str] = set()
        self.ports: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def open(self, timeout: float = 30.0) -> None:
        ready: asyncio.Queue[str] = asyncio.Queue()
        self._tasks = [
            asyncio.create_task(
                follow(self.client, agent_id, ready, self.received, self.ended, self.ports)
            )
            for agent_id in self.agent_ids
        ]
        async with asyncio.timeout(timeout):
            for _ in self.agent_ids:
                await ready.get()

    async def wait_ended(self, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def async_client(base_url: str, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections + 20, max_keepalive_connections=20)
    return httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=httpx.Timeout(30.0, read=None)
    )

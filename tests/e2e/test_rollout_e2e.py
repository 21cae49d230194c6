"""A rollout across three gunicorn workers sharing one Redis, with real SSE agents, where
the worker that accepted the send is killed (SIGKILL) in the middle of it.

Each simulated agent opens its stream on whichever worker the kernel hands the connection
to, acks on a fresh connection (so on any worker), and reopens its stream when it ends (a
killed worker ends the streams it held). The test does not depend on the spread: the
rollout's progress lives in Redis, any worker's ack or sweep advances it, and whichever
worker holds a target's stream writes its event (the bus). Checked on the client side:
no target receives the command twice, and the targets known to be in flight (received,
ack not yet started) never outnumber the window; on the server side: the rollout's own
in-flight count, polled, never does either; in the end every delivery is final.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest
from httpx_sse import aconnect_sse

from harness.gunicorn import GunicornServer
from harness.redis_server import RedisServer
from tests.e2e.many_streams import async_client, client_port, register_all

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

AGENTS = [f"roll-{n:02d}" for n in range(12)]
BATCH = 3  # sent as "25%" of 12
WORK_SECONDS = 0.25  # what each agent takes before it acknowledges
ENV = {
    "AGENT_REGISTRY_KEEPALIVE_SECONDS": "0.3",
    "AGENT_REGISTRY_SWEEP_INTERVAL_SECONDS": "0.05",
    # A target whose event was lost with the killed worker expires soon: the rollout goes on.
    "AGENT_REGISTRY_COMMAND_EXPIRY_SECONDS": "2",
}


@dataclass
class Observed:
    """What the agents saw, by the test process's monotonic clock."""

    received: Counter[str] = field(default_factory=Counter)  # command events per agent
    received_at: dict[str, float] = field(default_factory=dict)
    ack_started_at: dict[str, float] = field(default_factory=dict)
    acked: set[str] = field(default_factory=set)
    streams_opened: Counter[str] = field(default_factory=Counter)

    def known_in_flight(self, moment: float) -> int:
        """Agents that had received the command and not yet started their ack at
        ``moment``: in flight for certain (the true count may be higher, never lower)."""
        return sum(
            1
            for agent_id, received in self.received_at.items()
            if received <= moment < self.ack_started_at.get(agent_id, float("inf"))
        )


async def agent(base_url: str, agent_id: str, command_type: str, seen: Observed) -> None:
    """One agent: stream, work, acknowledge; reopen the stream whenever it ends."""
    while True:
        try:
            async with (
                async_client(base_url, 1) as own,
                aconnect_sse(own, "GET", f"/api/v1/agents/{agent_id}/events") as source,
            ):
                seen.streams_opened[agent_id] += 1
                async for sse in source.aiter_sse():
                    if sse.event != command_type or not sse.data:
                        continue
                    seen.received[agent_id] += 1
                    seen.received_at.setdefault(agent_id, time.monotonic())
                    command_id = json.loads(sse.data)["commandId"]
                    asyncio.get_running_loop().create_task(
                        work_then_ack(base_url, agent_id, command_id, seen)
                    )
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.05)


async def work_then_ack(base_url: str, agent_id: str, command_id: str, seen: Observed) -> None:
    await asyncio.sleep(WORK_SECONDS)
    seen.ack_started_at.setdefault(agent_id, time.monotonic())
    path = f"/api/v1/agents/{agent_id}/commands/{command_id}/ack"
    for _ in range(50):  # the worker it reached may be the one being killed: again
        try:
            async with async_client(base_url, 1) as fresh:
                answer = await fresh.post(path, json={"status": "SUCCESS"})
            if answer.status_code in (200, 409):  # 409: it expired meanwhile
                seen.acked.add(agent_id)
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.05)


async def wait_streams(client: httpx.AsyncClient, within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while True:
            listed = (await client.get("/api/v1/agents", params={"group": "roll"})).json()
            if len(listed) == len(AGENTS) and all(a["connected"] for a in listed):
                return
            await asyncio.sleep(0.05)


def test_a_rollout_survives_the_sigkill_of_the_worker_that_started_it(
    start_server, redis_server: RedisServer
):
    redis_server.flush()
    server: GunicornServer = start_server(
        {**ENV, "AGENT_REGISTRY_STORE": redis_server.url}, workers=3
    )

    async def scenario() -> tuple[Observed, dict, list[int], int | None]:
        seen = Observed()
        async with async_client(server.url, 50) as client:
            await register_all(client, AGENTS, "roll")
            agents = [
                asyncio.create_task(agent(server.url, agent_id, "deep-trace", seen))
                for agent_id in AGENTS
            ]
            try:
                await wait_streams(client)
                async with async_client(server.url, 1) as sender:
                    sent = await sender.post(
                        "/api/v1/agents/groups/roll/commands",
                        json={"type": "deep-trace", "rollout": {"batchSize": "25%"}},
                    )
                    # The connection is still open: the worker holding it accepted the send.
                    starter = server.owner_of(client_port(sent))
                assert sent.status_code == 202, sent.text
                assert starter is not None, "no worker holds the send's connection"
                command = sent.json()
                assert command["rollout"]["batchSize"] == BATCH
                command_id = command["commandId"]
                in_flight: list[int] = []
                killed_at_sent: int | None = None
                async with asyncio.timeout(60):
                    while True:
                        try:
                            answer = await client.get(f"/api/v1/commands/{command_id}")
                        except httpx.HTTPError:  # a pooled connection to the killed worker
                            continue
                        command = answer.json()
                        in_flight.append(command["rollout"]["inFlight"])
                        if killed_at_sent is None and command["rollout"]["sent"] >= 5:
                            os.kill(starter, signal.SIGKILL)
                            killed_at_sent = command["rollout"]["sent"]
                        if command["state"] != "RUNNING":
                            break
                        await asyncio.sleep(0.03)
            finally:
                for task in agents:
                    task.cancel()
                await asyncio.gather(*agents, return_exceptions=True)
        return seen, command, in_flight, killed_at_sent

    seen, command, in_flight, killed_at_sent = asyncio.run(scenario())

    assert killed_at_sent is not None and killed_at_sent < len(AGENTS)  # mid-rollout
    assert command["state"] == "COMPLETED"
    assert command["rollout"]["sent"] == len(AGENTS)
    final = {"ACKNOWLEDGED", "EXPIRED"}
    assert {d["status"] for d in command["deliveries"]} <= final, command["summary"]
    assert all(count == 1 for count in seen.received.values()), seen.received  # never twice
    assert max(in_flight) <= BATCH, in_flight
    for moment in seen.received_at.values():
        assert seen.known_in_flight(moment) <= BATCH
    acknowledged = {d["agentId"] for d in command["deliveries"] if d["status"] == "ACKNOWLEDGED"}
    assert acknowledged <= set(seen.received)  # only an agent that got it acknowledged it
    # Most targets got their event; those whose stream was on the killed worker when their
    # turn came (at most a batch or two) expired instead, and the rollout went on.
    assert len(acknowledged) >= len(AGENTS) - 2 * BATCH, command["summary"]
    sent_at = sorted(d["sentAt"] for d in command["deliveries"])
    assert len(set(sent_at)) >= len(AGENTS) // BATCH  # sent in several steps, not at once

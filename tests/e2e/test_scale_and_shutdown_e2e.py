"""Many streams at once, and a worker stopped with SIGTERM while they are open."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

import httpx
import pytest

from tests.e2e.many_streams import Fleet, async_client, register_all

pytestmark = pytest.mark.e2e


def test_eleven_hundred_open_streams_survive_pings_and_receive_one_broadcast_once(start_server):
    """Regression: the end-of-file check at each ping used select(), which fails for
    descriptors above 1023, so every stream past the first thousand was dropped at its
    first ping. 1 100 streams, pinged several times, must all stay and all receive."""
    server = start_server({"AGENT_REGISTRY_KEEPALIVE_SECONDS": "0.3"})
    agent_ids = [f"fleet-{n:04d}" for n in range(1100)]

    async def scenario() -> None:
        async with async_client(server.url, len(agent_ids)) as client:
            await register_all(client, agent_ids, "fleet")
            fleet = Fleet(client, agent_ids)
            await fleet.open()
            try:
                await asyncio.sleep(1.5)  # several keepalive pings
                assert fleet.ended == set()
                sent = await client.post("/api/v1/agents/commands", json={"type": "deep-trace"})
                assert sent.status_code == 202
                command_id = sent.json()["commandId"]
                assert sent.json()["summary"]["targets"] == 1100
                async with asyncio.timeout(20):
                    while fleet.received[command_id] < 1100:
                        await asyncio.sleep(0.05)
                await asyncio.sleep(0.3)
                assert fleet.received == {command_id: 1100}
                summary = (await client.get(f"/api/v1/commands/{command_id}")).json()["summary"]
                assert summary["delivered"] == 1100
                assert summary["pending"] == 0
            finally:
                await fleet.close()

    asyncio.run(scenario())


def test_sigterm_ends_a_hundred_open_streams_and_the_worker_exits_quickly(start_server):
    server = start_server({"AGENT_REGISTRY_KEEPALIVE_SECONDS": "30"})
    agent_ids = [f"term-{n:03d}" for n in range(100)]

    async def scenario() -> tuple[float, float]:
        async with async_client(server.url, len(agent_ids)) as client:
            await register_all(client, agent_ids, "term")
            await client.get("/api/v1/agents", params={"limit": 1})  # an idle keep-alive
            fleet = Fleet(client, agent_ids)
            await fleet.open()
            started = time.monotonic()
            server.signal(signal.SIGTERM)
            await fleet.wait_ended(timeout=8)
            assert fleet.ended == set(agent_ids)
            streams_ended = time.monotonic() - started
            # The worker still accepts for about a second after SIGTERM: a stream opened
            # then must end at once too, not hold the worker until graceful_timeout. (The
            # idle keep-alive connection is closed by then: the stream needs a new one,
            # which may also wait in the backlog once the worker stopped accepting.)
            late = Fleet(client, ["term-000"])
            with contextlib.suppress(httpx.TransportError, TimeoutError):
                await late.open(timeout=1)
                await late.wait_ended(timeout=2)
            await late.close()
            assert server.process is not None
            while server.process.poll() is None and time.monotonic() - started < 12:
                await asyncio.sleep(0.05)
            return streams_ended, time.monotonic() - started

    streams_ended_after, exited_after = asyncio.run(scenario())
    assert server.process is not None
    assert server.process.returncode == 0
    # graceful_timeout is 10 s: streams end at once, idle keep-alive connections are
    # closed at once (the worker's drain), plus gunicorn's 1 s shutdown poll.
    assert streams_ended_after < 2, streams_ended_after
    assert exited_after < 6, server.log()

"""The operator event stream through real gunicorn + gevent servers and a real SSE client."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis

from agent_registry.redis.bus import CHANNEL
from harness.gunicorn import GunicornServer
from harness.redis_server import RedisServer
from harness.wait import wait_until
from tests.e2e.sse_client import OperatorListener, StreamListener

pytestmark = [pytest.mark.e2e]

# Sweeps 0.25 s apart: under the suite's load a worker can stall 0.1-0.2 s, and with 0.05 s
# sweeps such a stall is an outage (more than 2 x the interval, API.md § Lifecycle) that
# postpones every due agent by staleAfter; a few of those kept the agents here from going
# STALE within the test's 10 s (seen once in a full run).
FAST = {
    "AGENT_REGISTRY_KEEPALIVE_SECONDS": "0.3",
    "AGENT_REGISTRY_SWEEP_INTERVAL_SECONDS": "0.25",
    "AGENT_REGISTRY_STALE_AFTER_SECONDS": "3",
}


def every_agent(
    listener: OperatorListener, agent_ids: set[str], check: Callable[[dict[str, Any]], bool]
) -> None:
    """Wait until the listener has seen, for each agent, an agent event passing ``check``."""

    def missing() -> set[str]:
        return agent_ids - {
            e["data"]["id"] for e in listener.seen if e["event"] == "agent" and check(e["data"])
        }

    if missing():
        try:
            listener.until(lambda _: not missing())  # each event read is in ``seen`` first
        except AssertionError:
            raise AssertionError(f"missing {missing()}; seen {listener.seen}") from None


def open_until_every_worker_holds_one(
    server: GunicornServer, open_one: Callable[[int], StreamListener], most: int = 40
) -> tuple[list[StreamListener], dict[StreamListener, int]]:
    """Open streams until each worker holds one (which worker accepts is the kernel's
    choice): the streams and the worker holding each."""
    workers = set(server.worker_pids())
    opened: list[StreamListener] = []
    owners: dict[StreamListener, int] = {}
    while set(owners.values()) != workers:
        assert len(opened) < most, f"streams reached only {set(owners.values())} of {workers}"
        stream = open_one(len(opened)).start()
        opened.append(stream)
        owner = server.owner_of(stream.client_port)
        assert owner in workers
        owners[stream] = owner
    return opened, owners


@pytest.mark.redis
def test_operator_streams_on_two_workers_see_the_whole_fleet_with_one_subscription_each(
    start_server, redis_server: RedisServer
) -> None:
    redis_server.flush()
    env = {**FAST, "AGENT_REGISTRY_STORE": redis_server.url}
    server = start_server(env, workers=2)
    http = httpx.Client(base_url=server.url, timeout=5)
    observer = redis.Redis.from_url(redis_server.url, decode_responses=True)
    operators: list[StreamListener] = []
    agents: list[StreamListener] = []
    try:
        operators, _ = open_until_every_worker_holds_one(
            server, lambda n: OperatorListener(server.url)
        )
        operators.append(OperatorListener(server.url).start())  # a few more on either worker
        operators.append(OperatorListener(server.url).start())
        # One bus subscription per worker, whatever the number of operator streams.
        assert wait_until(lambda: observer.pubsub_numsub(CHANNEL) == [(CHANNEL, 2)], 5)
        subscribers = [c for c in observer.client_list() if "P" in c["flags"]]
        assert len(subscribers) == 2, subscribers

        def agent_stream(n: int) -> StreamListener:
            agent_id = f"agent-{n:02}"
            assert http.post(
                "/api/v1/agents/register", json={"id": agent_id, "group": "e2e"}
            ).is_success
            return StreamListener(server.url, agent_id)

        agents, _ = open_until_every_worker_holds_one(server, agent_stream)
        agent_ids = {f"agent-{n:02}" for n in range(len(agents))}
        for operator in operators:
            assert isinstance(operator, OperatorListener)
            every_agent(operator, agent_ids, lambda data: data["connected"] is True)

        for agent_id in agent_ids:  # LIVE for another 3 s: time to send and ack
            assert http.post(f"/api/v1/agents/{agent_id}/heartbeat").status_code == 204
        sent = http.post("/api/v1/agents/commands", json={"type": "deep-trace"})
        assert sent.status_code == 202
        command_id = sent.json()["commandId"]
        for stream in agents:
            assert stream.next_command()["id"] == command_id
            agent_id = stream.url.split("/")[-2]
            assert http.post(f"/api/v1/agents/{agent_id}/commands/{command_id}/ack").is_success

        def all_acked(e: dict[str, Any]) -> bool:
            data = e["data"]
            return (
                e["event"] == "command"
                and data["commandId"] == command_id
                and data["summary"]["acknowledged"] == len(agent_ids)
            )

        for operator in operators:
            assert isinstance(operator, OperatorListener)
            found = operator.until(all_acked)
            assert "deliveries" not in found["data"]
            every_agent(operator, agent_ids, lambda data: data["state"] == "STALE")

            def all_stale(e: dict[str, Any]) -> bool:
                return e["event"] == "fleet" and e["data"]["STALE"] == len(agent_ids)

            # The counts may come before the last agent event, already read by then.
            if not any(all_stale(e) for e in operator.seen):
                operator.until(all_stale)
    finally:
        for stream in [*operators, *agents]:
            stream.close()
        http.close()
        observer.close()


def test_sigterm_ends_the_operator_streams_and_the_server_exits_soon(start_server) -> None:
    server = start_server(FAST)
    streams = [OperatorListener(server.url).start() for _ in range(3)]
    try:
        for stream in streams:
            assert isinstance(stream, OperatorListener)
            stream.until(lambda e: e["event"] == "fleet")
        started = time.monotonic()

        server.stop()

        assert all(stream.ended.wait(5) for stream in streams)
        assert time.monotonic() - started < 6
    finally:
        for stream in streams:
            stream.close()

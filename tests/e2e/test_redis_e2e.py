"""Several workers and several servers sharing one real Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent_registry.redis.bus import CHANNEL
from agent_registry.redis.client import REPLY_TIMEOUT, WORST_CALL_SECONDS
from harness.gunicorn import GunicornServer
from harness.redis_server import RedisServer
from harness.wait import holds_for, wait_until
from tests.e2e.many_streams import Fleet, async_client, register_all
from tests.e2e.sse_client import StreamListener
from tests.redis.test_bus import store_undecodable

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

FAST = {
    "AGENT_REGISTRY_KEEPALIVE_SECONDS": "0.3",
    "AGENT_REGISTRY_SWEEP_INTERVAL_SECONDS": "0.05",
}
BATCH = 20  # streams opened at a time until every worker holds one


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    redis_server.flush()
    return redis_server.url


async def open_until_every_worker_holds_one(
    client: httpx.AsyncClient, server: GunicornServer, within: float = 20.0
) -> tuple[Fleets, dict[str, int]]:
    """Open streams in batches until each worker process holds at least one.

    Which worker accepts a connection is the kernel's choice (and a worker that is still
    booting accepts none), so the test asks the process state which worker holds each
    stream's connection instead of assuming a spread."""
    workers = set(server.worker_pids())
    fleets: list[Fleet] = []
    owners: dict[str, int] = {}
    deadline = time.monotonic() + within
    while set(owners.values()) != workers:
        if time.monotonic() > deadline:
            raise AssertionError(f"streams reached only {set(owners.values())} of {workers}")
        agent_ids = [f"multi-{len(owners) + n:03d}" for n in range(BATCH)]
        await register_all(client, agent_ids, "multi")
        fleet = Fleet(client, agent_ids)
        fleets.append(fleet)
        await fleet.open()
        for agent_id, port in fleet.ports.items():
            owner = server.owner_of(port)
            assert owner in workers, f"no worker holds the stream of {agent_id}"
            owners[agent_id] = owner
    return Fleets(fleets), owners


class Fleets:
    """Several fleets seen as one: ``received`` adds up their counts."""

    def __init__(self, fleets: list[Fleet]) -> None:
        self.fleets = fleets

    @property
    def received(self) -> Counter[str]:
        return sum((fleet.received for fleet in self.fleets), Counter())

    async def close(self) -> None:
        for fleet in self.fleets:
            await fleet.close()


def test_three_workers_deliver_once_accept_acks_anywhere_and_sweep_once(start_server, redis_url):
    lifecycle = {
        "AGENT_REGISTRY_STALE_AFTER_SECONDS": "3",
        "AGENT_REGISTRY_DEAD_AFTER_SECONDS": "1",
    }
    server = start_server({**FAST, **lifecycle, "AGENT_REGISTRY_STORE": redis_url}, workers=3)

    async def scenario() -> list[str]:
        async with async_client(server.url, 300) as client:
            fleet, owners = await open_until_every_worker_holds_one(client, server)
            agent_ids = sorted(owners)
            n = len(agent_ids)
            try:
                everyone = (
                    await client.post("/api/v1/agents/commands", json={"type": "deep-trace"})
                ).json()
                group = (
                    await client.post(
                        "/api/v1/agents/groups/multi/commands", json={"type": "replay"}
                    )
                ).json()
                async with asyncio.timeout(10):
                    while (
                        fleet.received[everyone["commandId"]] < n
                        or fleet.received[group["commandId"]] < n
                    ):
                        await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)  # no second copy arrives from another worker
                assert fleet.received == {everyone["commandId"]: n, group["commandId"]: n}
                # Acks arrive on new connections, so on whichever worker accepts them.
                for agent_id in agent_ids:
                    async with async_client(server.url, 1) as fresh:
                        answer = await fresh.post(
                            f"/api/v1/agents/{agent_id}/commands/{group['commandId']}/ack"
                        )
                        assert answer.status_code == 200
                summary = (await client.get(f"/api/v1/commands/{group['commandId']}")).json()
                assert summary["summary"]["acknowledged"] == n
            finally:
                await fleet.close()
            return agent_ids

    agent_ids = asyncio.run(scenario())

    # Every worker runs the sweeps; each transition is a compare-and-set in Redis, which
    # tests/stores/test_store_contract.py pins: here, every agent ends DEAD.
    with httpx.Client(base_url=server.url, timeout=5) as http:

        def all_dead():
            listed = http.get("/api/v1/agents", params={"status": "DEAD"}).json()
            return len(listed) == len(agent_ids)

        assert wait_until(all_dead, within=10)


def test_a_command_posted_to_one_server_reaches_a_stream_on_another(start_server, redis_url):
    env = {**FAST, "AGENT_REGISTRY_STORE": redis_url}
    first, second = start_server(env), start_server(env)
    with httpx.Client(base_url=first.url, timeout=5) as http:
        http.post("/api/v1/agents/register", json={"id": "cross-1", "group": "cross"})
        with StreamListener(second.url, "cross-1") as stream:
            sent = http.post("/api/v1/agents/cross-1/commands", json={"type": "replay"}).json()
            assert stream.next_command()["id"] == sent["commandId"]
            assert stream.commands_within(0.3) == []
            assert http.get("/api/v1/agents/cross-1").json()["connected"] is True
            delivered = wait_until(
                lambda: (
                    http.get(f"/api/v1/commands/{sent['commandId']}").json()["summary"]["delivered"]
                    == 1
                ),
                within=3,
            )
            assert delivered


def test_a_stream_on_another_server_is_replaced_by_a_new_one(start_server, redis_url):
    env = {**FAST, "AGENT_REGISTRY_STORE": redis_url}
    first, second = start_server(env), start_server(env)
    with httpx.Client(base_url=first.url, timeout=5) as http:
        http.post("/api/v1/agents/register", json={"id": "move-1", "group": "move"})
        old = StreamListener(first.url, "move-1").start()
        with closing(old), StreamListener(second.url, "move-1") as new:
            assert old.ended.wait(3), "the old stream on the other server did not end"
            sent = http.post("/api/v1/agents/move-1/commands", json={"type": "replay"}).json()
            assert new.next_command()["id"] == sent["commandId"]
            # Several presence refreshes: the new stream keeps its claim all along.
            assert holds_for(
                lambda: http.get("/api/v1/agents/move-1").json()["connected"] is True, 1.0
            )


def test_redis_outage_answers_503_keeps_streams_and_recovers_without_loss(
    start_server, redis_server, redis_url
):
    server = start_server({**FAST, "AGENT_REGISTRY_STORE": redis_url})
    with httpx.Client(base_url=server.url, timeout=10) as http:
        http.post("/api/v1/agents/register", json={"id": "outage-1", "group": "outage"})
        with StreamListener(server.url, "outage-1") as stream:
            before = http.post("/api/v1/agents/outage-1/commands", json={"type": "replay"}).json()
            assert stream.next_command()["id"] == before["commandId"]

            redis_server.stop()
            during = http.post("/api/v1/agents/outage-1/heartbeat")
            assert during.status_code == 503
            assert during.json()["code"] == "STORE_UNAVAILABLE"
            assert http.get("/api/v1/agents").status_code == 503
            # Pings keep flowing; the stream stays open.
            assert holds_for(lambda: not stream.ended.is_set(), 1.0)

            redis_server.start()
            assert wait_until(
                lambda: http.post("/api/v1/agents/outage-1/heartbeat").status_code == 204, 10
            )
            after = http.post("/api/v1/agents/outage-1/commands", json={"type": "replay"}).json()
            assert stream.next_command()["id"] == after["commandId"]
            assert stream.commands_within(0.5) == []
            commands = http.get("/api/v1/agents/outage-1/commands").json()
            assert [c["commandId"] for c in commands] == [after["commandId"], before["commandId"]]
            assert wait_until(lambda: http.get("/api/v1/agents/outage-1").json()["connected"], 5)


def metric(url: str, name: str) -> float:
    """One unlabelled sample of the host's /metrics."""
    with httpx.Client(base_url=url, timeout=5) as http:
        text = http.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    raise AssertionError(f"{name} not exported")


def checks(http: httpx.Client) -> dict[str, str]:
    return http.get("/readyz").json()["checks"]


def test_one_bad_command_no_longer_stops_a_workers_cross_worker_delivery(
    start_server, redis_server, redis_url
):
    """Regression (issue 15, row 3): a stored command whose handling raised, announced and
    then re-read by the catch-up after a Redis blip, ended the subscriber greenlet: that
    worker relayed nothing from other workers (6-11 of 20 commands arrived) until restarted."""
    env = {**FAST, "AGENT_REGISTRY_STORE": redis_url}
    sender, receiver = start_server(env), start_server(env)  # one worker each: two buses
    admin = redis_server.client()
    with (
        httpx.Client(base_url=sender.url, timeout=5) as http,
        httpx.Client(base_url=receiver.url, timeout=5) as probe,
    ):
        http.post("/api/v1/agents/register", json={"id": "bad-1", "group": "bad"})
        assert wait_until(lambda: admin.pubsub_numsub(CHANNEL) == [(CHANNEL, 2)], 5)
        with StreamListener(receiver.url, "bad-1") as stream:
            store_undecodable(admin, "bad-command", "bad-1", created=time.time())
            admin.publish(CHANNEL, '{"origin": "elsewhere", "command": "bad-command"}')
            # A blip: both subscribers reconnect, and each catch-up reads the bad command again.
            assert wait_until(lambda: metric(receiver.url, "agent_registry_bus_skipped_total"), 5)
            admin.client_kill_filter(_type="pubsub")
            assert wait_until(lambda: admin.pubsub_numsub(CHANNEL) == [(CHANNEL, 2)], 5)
            assert wait_until(
                lambda: metric(receiver.url, "agent_registry_bus_skipped_total") >= 2, 5
            ), receiver.log()
            sent = [
                http.post("/api/v1/agents/bad-1/commands", json={"type": "replay"}).json()
                for _ in range(20)
            ]
            received = [stream.next_command()["id"] for _ in sent]
            assert received == [command["commandId"] for command in sent]
            assert stream.commands_within(0.3) == []
        assert checks(probe)["bus"] == "ok"
        assert metric(receiver.url, "agent_registry_bus_restarts_total") == 0
        assert metric(receiver.url, "agent_registry_bus_subscribed") == 1


def test_readiness_names_the_bus_while_the_subscriber_is_down_and_it_restarts(
    start_server, redis_server, redis_url
):
    """Issue 15, row 3: a subscriber that fails (here Redis refuses SUBSCRIBE: an ACL that
    dropped the command) is noticed and started again once it can subscribe."""
    env = {**FAST, "AGENT_REGISTRY_STORE": redis_url}
    sender, receiver = start_server(env), start_server(env)
    admin = redis_server.client()
    with (
        httpx.Client(base_url=sender.url, timeout=5) as http,
        httpx.Client(base_url=receiver.url, timeout=5) as probe,
    ):
        http.post("/api/v1/agents/register", json={"id": "down-1", "group": "down"})
        assert wait_until(lambda: checks(probe)["bus"] == "ok", 5)
        with StreamListener(receiver.url, "down-1") as stream:
            admin.execute_command("ACL", "SETUSER", "default", "-subscribe")
            try:
                admin.client_kill_filter(_type="pubsub")
                down = {"store": "ok", "bus": "unsubscribed", "shutdown": "ok"}
                assert wait_until(lambda: checks(probe) == down, 5)
                answer = probe.get("/readyz")
                assert (answer.status_code, answer.json()["status"]) == (503, "unready")
                assert metric(receiver.url, "agent_registry_bus_subscribed") == 0
                assert metric(receiver.url, "agent_registry_bus_restarts_total") >= 1
            finally:
                admin.execute_command("ACL", "SETUSER", "default", "+subscribe")
            assert wait_until(lambda: probe.get("/readyz").status_code == 200, 10)
            assert checks(probe)["bus"] == "ok"
            assert metric(receiver.url, "agent_registry_bus_subscribed") == 1
            sent = http.post("/api/v1/agents/down-1/commands", json={"type": "replay"}).json()
            assert stream.next_command()["id"] == sent["commandId"]


def test_requests_during_a_sigstop_of_redis_answer_503_within_one_reply_timeout(
    start_server, own_redis
):
    """Regression (issue 15, row 12): with Redis paused, a request whose call had to open a
    connection waited 8.2 s, one on a pooled connection 4.1 s (docs said about 4): redis-py
    retried the timeout, and the handshake inside the retried call retried it again."""
    server = start_server({**FAST, "AGENT_REGISTRY_STORE": own_redis.url})
    agents = [f"paused-{n}" for n in range(8)]
    clients = [httpx.Client(base_url=server.url, timeout=30) for _ in agents]
    try:
        # Each keep-alive connection has been answered once, so the worker's Redis pool holds
        # a connection or two; eight requests at once then need new ones as well.
        for http, agent_id in zip(clients, agents, strict=True):
            assert (
                http.post(
                    "/api/v1/agents/register", json={"id": agent_id, "group": "paused"}
                ).status_code
                == 201
            )

        def heartbeat(pair: tuple[httpx.Client, str]) -> tuple[int, str, float]:
            http, agent_id = pair
            started = time.monotonic()
            answer = http.post(f"/api/v1/agents/{agent_id}/heartbeat")
            return answer.status_code, answer.json()["code"], time.monotonic() - started

        own_redis.signal(signal.SIGSTOP)
        try:
            with ThreadPoolExecutor(len(agents)) as pool:
                answers = list(pool.map(heartbeat, zip(clients, agents, strict=True)))
        finally:
            own_redis.signal(signal.SIGCONT)
        assert {(status, code) for status, code, _ in answers} == {(503, "STORE_UNAVAILABLE")}
        slowest = max(seconds for *_, seconds in answers)
        # One reply timeout (2 s) for every one of them, well below the documented worst case
        # (4 s: waiting for a free connection, connecting, the reply); slack for a busy host.
        assert REPLY_TIMEOUT - 0.2 < slowest < REPLY_TIMEOUT + 1.5 < WORST_CALL_SECONDS, answers
        assert wait_until(
            lambda: clients[0].post(f"/api/v1/agents/{agents[0]}/heartbeat").status_code == 204,
            10,
        )
    finally:
        for http in clients:
            http.close()


def test_agents_of_a_worker_killed_with_sigkill_read_disconnected(start_server, redis_url):
    server = start_server({**FAST, "AGENT_REGISTRY_STORE": redis_url}, workers=2)
    with httpx.Client(base_url=server.url, timeout=5) as http:
        http.post("/api/v1/agents/register", json={"id": "killed-1", "group": "kill"})
        stream = StreamListener(server.url, "killed-1").start()
        try:
            assert http.get("/api/v1/agents/killed-1").json()["connected"] is True
            owner = server.owner_of(stream.client_port)
            assert owner is not None, "no worker holds the stream"
            os.kill(owner, signal.SIGKILL)
            started = time.monotonic()

            def disconnected() -> bool:
                # A new connection each time: a pooled one may have belonged to the dead worker.
                answer = httpx.get(f"{server.url}/api/v1/agents/killed-1", timeout=5)
                return answer.json()["connected"] is False

            gone = wait_until(disconnected, 5)
            assert gone, "presence of a killed worker's agent never expired"
            # Three keepalive intervals (0.9 s) plus slack for a loaded machine.
            assert time.monotonic() - started < 3.0
        finally:
            stream.close()

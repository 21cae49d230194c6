"""Cancel and delete through real gunicorn servers and a real SSE client.

On the memory store one server holds the stream and answers the requests. On Redis, two
servers share one redis-server: the stream is held by one and every request goes to the
other, so the cancel event and the end of the stream cross processes through the bus
(two servers, not two workers of one, so that the test does not depend on which worker
the kernel hands a connection to).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from harness.gunicorn import GunicornServer
from harness.redis_server import RedisServer
from harness.wait import wait_until
from tests.e2e.sse_client import StreamListener

pytestmark = pytest.mark.e2e

FAST = {
    "AGENT_REGISTRY_KEEPALIVE_SECONDS": "0.3",
    "AGENT_REGISTRY_SWEEP_INTERVAL_SECONDS": "0.05",
}
# For the prune test only: agents go DEAD within a second of their last heartbeat.
QUICK_DEATH = {
    "AGENT_REGISTRY_STALE_AFTER_SECONDS": "0.5",
    "AGENT_REGISTRY_DEAD_AFTER_SECONDS": "0.5",
}


@dataclass
class Servers:
    streams: GunicornServer  # holds the agents' streams
    requests: GunicornServer  # answers the operator's requests (the same one on memory)


@pytest.fixture
def lifecycle() -> dict[str, str]:
    """Extra settings; a test parametrizes it to change them."""
    return {}


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def servers(request, start_server, lifecycle: dict[str, str]) -> Iterator[Servers]:
    if request.param == "memory":
        server = start_server({**FAST, **lifecycle})
        yield Servers(server, server)
        return
    redis_server: RedisServer = request.getfixturevalue("redis_server")
    redis_server.flush()
    env = {**FAST, **lifecycle, "AGENT_REGISTRY_STORE": redis_server.url}
    yield Servers(start_server(env), start_server(env))


@pytest.fixture
def http(servers: Servers) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{servers.requests.url}/api/v1", timeout=5) as client:
        yield client


@pytest.fixture
def listen(servers: Servers) -> Iterator:
    opened: list[StreamListener] = []

    def open_stream(agent_id: str) -> StreamListener:
        listener = StreamListener(servers.streams.url, agent_id).start()
        opened.append(listener)
        return listener

    yield open_stream
    for listener in opened:
        listener.close()


def register(http: httpx.Client, *agent_ids: str, group: str = "fleet-e2e") -> None:
    for agent_id in agent_ids:
        answer = http.post("/agents/register", json={"id": agent_id, "group": group})
        assert answer.status_code in (200, 201), answer.text


def connected(http: httpx.Client, agent_id: str) -> bool:
    return bool(http.get(f"/agents/{agent_id}").json()["connected"])


def test_cancel_reaches_every_open_stream_once_and_later_acks_are_409(http, listen):
    register(http, "cancel-1", "cancel-2", "cancel-3")
    first, second = listen("cancel-1"), listen("cancel-2")  # cancel-3 has no stream
    assert wait_until(lambda: connected(http, "cancel-2"), within=5)
    sent = http.post("/agents/groups/fleet-e2e/commands", json={"type": "deep-trace"}).json()
    command_id = sent["commandId"]
    for stream in (first, second):
        assert stream.next_command()["id"] == command_id
    assert http.post(f"/agents/cancel-1/commands/{command_id}/ack").status_code == 200
    answer = http.post(f"/commands/{command_id}/cancel")

    assert answer.status_code == 200
    summary = answer.json()["summary"]
    assert summary["acknowledged"] + summary["cancelled"] == 3
    event = second.next_command()
    assert (event["event"], event["data"]) == ("cancel", {"commandId": command_id})
    assert second.commands_within(0.3) == []  # once, not once per server
    statuses = {d["agentId"]: d["status"] for d in answer.json()["deliveries"]}
    assert statuses == {
        "cancel-1": "ACKNOWLEDGED",
        "cancel-2": "CANCELLED",
        "cancel-3": "CANCELLED",
    }
    assert first.commands_within(0.3) == []  # it had acknowledged: no cancel for it
    late = http.post(f"/agents/cancel-2/commands/{command_id}/ack")
    assert (late.status_code, late.json()["code"]) == (409, "COMMAND_CANCELLED")
    assert http.post(f"/commands/{command_id}/cancel").json() == answer.json()
    assert second.commands_within(0.3) == []  # the second cancel changed nothing


def test_delete_ends_the_stream_and_the_agent_is_gone(http, listen):
    register(http, "delete-1", "delete-2")
    doomed, other = listen("delete-1"), listen("delete-2")
    assert wait_until(lambda: connected(http, "delete-1"), within=5)
    command_id = http.post("/agents/delete-1/commands", json={"type": "replay"}).json()["commandId"]
    assert doomed.next_command()["id"] == command_id

    assert http.delete("/agents/delete-1").status_code == 204

    assert doomed.ended.wait(5), "the deleted agent's stream did not end"
    assert not other.ended.is_set()
    assert http.get("/agents/delete-1").status_code == 404
    assert [a["id"] for a in http.get("/agents", params={"group": "fleet-e2e"}).json()] == [
        "delete-2"
    ]
    read = http.get(f"/commands/{command_id}").json()
    assert read["deliveries"][0]["status"] == "CANCELLED"
    heartbeat = http.post("/agents/delete-1/heartbeat")
    assert (heartbeat.status_code, heartbeat.json()["code"]) == (404, "AGENT_NOT_REGISTERED")
    assert wait_until(lambda: http.get("/server").json()["fleet"]["connected"] == 1, within=5)


@pytest.mark.parametrize("lifecycle", [QUICK_DEATH], ids=["quick-death"])
def test_prune_deletes_dead_agents_and_ends_their_streams(http, listen):
    register(http, "prune-1", "prune-2")
    stream = listen("prune-1")

    def both_dead() -> bool:
        listed = http.get("/agents", params={"status": "DEAD", "group": "fleet-e2e"}).json()
        return len(listed) == 2

    assert wait_until(both_dead, within=10)
    answer = http.delete("/agents", params={"status": "DEAD"})

    assert (answer.status_code, answer.json()) == (200, {"deleted": 2})
    assert stream.ended.wait(5), "the pruned agent's stream did not end"
    assert http.get("/agents", params={"group": "fleet-e2e"}).json() == []

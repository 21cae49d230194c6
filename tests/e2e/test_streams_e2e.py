"""Event streams and commands through a real gunicorn + gevent server and httpx-sse."""

from __future__ import annotations

import time

import httpx
import pytest

from harness.gunicorn import GunicornServer
from harness.wait import wait_until
from tests.e2e.sse_client import StreamListener

pytestmark = pytest.mark.e2e

STREAM_SETTINGS = {
    "AGENT_REGISTRY_KEEPALIVE_SECONDS": "0.2",
    "AGENT_REGISTRY_SWEEP_INTERVAL_SECONDS": "0.05",
    "AGENT_REGISTRY_COMMAND_EXPIRY_SECONDS": "1.5",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with GunicornServer(log_dir=tmp_path_factory.mktemp("streams"), env=STREAM_SETTINGS) as process:
        yield process


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=5) as client:
        yield client


@pytest.fixture
def listen(server):
    opened: list[StreamListener] = []

    def open_stream(agent_id: str, **headers: str) -> StreamListener:
        listener = StreamListener(server.url, agent_id, headers).start()
        opened.append(listener)
        return listener

    yield open_stream
    for listener in opened:
        listener.close()


def register(http: httpx.Client, agent_id: str, group: str) -> None:
    answer = http.post("/api/v1/agents/register", json={"id": agent_id, "group": group})
    assert answer.status_code in (200, 201), answer.text


def test_single_agent_command_arrives_once_and_is_acknowledged(http, listen):
    register(http, "single-1", "single")
    stream = listen("single-1")
    assert stream.retry == 5000

    sent = http.post(
        "/api/v1/agents/single-1/commands",
        json={"type": "config-update", "payload": {"level": "débug", "n": 1}},
    )
    assert sent.status_code == 202
    command_id = sent.json()["commandId"]

    event = stream.next_command()
    assert event["id"] == command_id
    assert event["event"] == "config-update"
    assert event["data"]["commandId"] == command_id
    assert event["data"]["payload"] == {"level": "débug", "n": 1}
    assert event["data"]["issuedAt"] == sent.json()["createdAt"]
    assert event["data"]["expiresAt"] == sent.json()["expiresAt"]
    assert stream.commands_within(0.3) == []

    delivered = wait_until(
        lambda: http.get(f"/api/v1/commands/{command_id}").json()["summary"]["delivered"] == 1,
        within=3,
    )
    assert delivered
    ack = http.post(
        f"/api/v1/agents/single-1/commands/{command_id}/ack",
        json={"status": "success", "message": "applied"},
    )
    assert ack.status_code == 200
    assert ack.json()["status"] == "ACKNOWLEDGED"
    summary = http.get(f"/api/v1/commands/{command_id}").json()["summary"]
    assert summary == {
        "targets": 1,
        "pending": 0,
        "delivered": 0,
        "acknowledged": 1,
        "failed": 0,
        "expired": 0,
        "cancelled": 0,
    }


def test_group_and_all_reach_only_live_agents_with_open_streams(http, listen):
    for agent_id in ("grp-a", "grp-b"):
        register(http, agent_id, "fanout-g")
    register(http, "grp-other", "fanout-other")
    streams = {agent_id: listen(agent_id) for agent_id in ("grp-a", "grp-b", "grp-other")}

    group = http.post("/api/v1/agents/groups/fanout-g/commands", json={"type": "replay"})
    assert group.status_code == 202
    assert [d["agentId"] for d in group.json()["deliveries"]] == ["grp-a", "grp-b"]
    for agent_id in ("grp-a", "grp-b"):
        assert streams[agent_id].next_command()["id"] == group.json()["commandId"]
    assert streams["grp-other"].commands_within(0.3) == []

    everyone = http.post("/api/v1/agents/commands", json={"type": "deep-trace"})
    assert everyone.status_code == 202
    targets = {d["agentId"] for d in everyone.json()["deliveries"]}
    assert {"grp-a", "grp-b", "grp-other"} <= targets
    for stream in streams.values():
        assert stream.next_command()["id"] == everyone.json()["commandId"]
        assert stream.commands_within(0.2) == []


def test_failure_ack_is_recorded_with_its_result(http, listen):
    register(http, "fail-1", "fail")
    stream = listen("fail-1")
    command_id = http.post("/api/v1/agents/fail-1/commands", json={"type": "replay"}).json()[
        "commandId"
    ]
    stream.next_command()
    ack = http.post(
        f"/api/v1/agents/fail-1/commands/{command_id}/ack",
        json={"status": "FAILURE", "message": "route not found", "details": {"route": "r9"}},
    )
    assert ack.json()["status"] == "FAILED"
    assert ack.json()["result"] == {
        "status": "FAILURE",
        "message": "route not found",
        "details": {"route": "r9"},
    }


def test_unacknowledged_commands_expire_delivered_or_not(http, listen):
    register(http, "exp-streaming", "expiry")
    register(http, "exp-silent", "expiry")
    stream = listen("exp-streaming")
    command_id = http.post(
        "/api/v1/agents/groups/expiry/commands", json={"type": "deep-trace"}
    ).json()["commandId"]
    stream.next_command()

    def expired():
        body = http.get(f"/api/v1/commands/{command_id}").json()
        return body if body["summary"]["expired"] == 2 else None

    body = wait_until(expired, within=5)
    assert body, "deliveries did not expire"
    by_agent = {d["agentId"]: d for d in body["deliveries"]}
    assert by_agent["exp-streaming"]["deliveredAt"] is not None
    assert by_agent["exp-silent"]["deliveredAt"] is None
    late = http.post(f"/api/v1/agents/exp-streaming/commands/{command_id}/ack")
    assert late.status_code == 409
    assert late.json()["code"] == "COMMAND_EXPIRED"


def test_reconnect_with_last_event_id_replays_nothing(http, listen):
    register(http, "replay-1", "replay")
    pending = http.post("/api/v1/agents/replay-1/commands", json={"type": "replay"}).json()
    assert pending["deliveries"][0]["status"] == "PENDING"

    stream = listen("replay-1", **{"Last-Event-ID": pending["commandId"]})
    assert stream.commands_within(0.5) == []
    status = http.get(f"/api/v1/commands/{pending['commandId']}").json()["deliveries"][0]
    assert status["status"] == "PENDING"

    fresh = http.post("/api/v1/agents/replay-1/commands", json={"type": "replay"}).json()
    assert stream.next_command()["id"] == fresh["commandId"]


def test_second_stream_replaces_the_first(http, listen):
    register(http, "dup-1", "dup")
    first = listen("dup-1")
    second = listen("dup-1")
    assert first.ended.wait(3), "the replaced stream did not end"
    command_id = http.post("/api/v1/agents/dup-1/commands", json={"type": "replay"}).json()[
        "commandId"
    ]
    assert second.next_command()["id"] == command_id
    assert first.commands_within(0.2) == []
    assert http.get("/api/v1/agents/dup-1").json()["connected"] is True


def test_keepalive_pings_while_idle(server, http):
    register(http, "ping-1", "ping")
    received = b""
    started = time.monotonic()
    with http.stream("GET", "/api/v1/agents/ping-1/events") as response:
        for chunk in response.iter_raw():
            received += chunk
            if time.monotonic() - started > 1.1:
                break
    assert received.startswith(b"retry: 5000\n: connected\n\n")
    pings = received.count(b": ping\n\n")
    # KEEPALIVE_SECONDS=0.2 over ~1.1 s: about five pings, with room for a busy machine.
    assert 3 <= pings <= 7, received


def test_dropped_client_is_noticed_and_cleaned_up(http, listen):
    register(http, "drop-1", "drop")
    stream = listen("drop-1")
    assert http.get("/api/v1/agents/drop-1").json()["connected"] is True
    stream.drop()
    # Noticed at the next keepalive (0.2 s) at the latest; allow for a loaded machine.
    gone = wait_until(lambda: not http.get("/api/v1/agents/drop-1").json()["connected"], 3)
    assert gone, "a dropped stream still shows connected"


def test_deliver_on_connect_writes_a_pending_command_to_a_stream_that_opens_later(http, listen):
    """Row 11 of the hostile-input issue: commands were lost to agents reconnecting in a
    deploy. A command sent with deliverOnConnect reaches them when their stream opens."""
    for agent_id in ("doc-1", "doc-2"):
        register(http, agent_id, "doc")
    early = listen("doc-1")
    plain = http.post("/api/v1/agents/groups/doc/commands", json={"type": "replay"})
    owed = http.post(
        "/api/v1/agents/groups/doc/commands",
        json={"type": "deep-trace", "payload": {"n": 1}, "deliverOnConnect": True},
    )
    assert owed.status_code == 202 and owed.json()["deliverOnConnect"] is True
    assert plain.json()["deliverOnConnect"] is False
    as_sent = [early.next_command(), early.next_command()]
    assert [event["id"] for event in as_sent] == [
        plain.json()["commandId"],
        owed.json()["commandId"],
    ]

    late = listen("doc-2")
    on_connect = late.next_command()
    assert on_connect == as_sent[1]  # the same id and the same data as when it was sent
    assert late.commands_within(0.3) == []  # the plain command is not pushed
    assert wait_until(
        lambda: (
            http.get(f"/api/v1/commands/{owed.json()['commandId']}").json()["summary"]["delivered"]
            == 2
        ),
        within=3,
    )
    late.close()
    again = listen("doc-2")
    assert again.commands_within(0.3) == []  # delivered once: not owed any more

"""§ Fleet operations of API.md: delete an agent, delete many DEAD agents, cancel a command.

Every test runs on both stores, through the contract client (each answer is checked against
the OpenAPI document). Streams are read through the test client, chunk by chunk, only when
something is known to be queued on them, so no read waits for a keepalive.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from harness.api_actions import Api
from harness.clock import FakeClock
from tests.api import assert_error

STALE, DEAD = 90.0, 300.0  # the default thresholds


def command_of(client: FlaskClient, command_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/commands/{command_id}")
    assert response.status_code == 200
    return dict(response.json)


def statuses(command: dict[str, Any]) -> dict[str, str]:
    return {d["agentId"]: d["status"] for d in command["deliveries"]}


def send(api: Api, path: str) -> str:
    response = api.send(path)
    assert response.status_code == 202, response.get_data(as_text=True)
    return str(response.json["commandId"])


def delete(client: FlaskClient, agent_id: str) -> TestResponse:
    return client.delete(f"/api/v1/agents/{agent_id}")


def prune(client: FlaskClient, query: str) -> TestResponse:
    return client.delete(f"/api/v1/agents?{query}")


def cancel(client: FlaskClient, command_id: str, **kwargs: Any) -> TestResponse:
    return client.post(f"/api/v1/commands/{command_id}/cancel", **kwargs)


def fleet_counts(client: FlaskClient) -> dict[str, int]:
    return dict(client.get("/api/v1/server").json["fleet"])


def make_dead(api: Api, clock: FakeClock, runtime: Any, *agent_ids: str) -> None:
    for agent_id in agent_ids:
        assert api.register(agent_id, "group-dead").status_code in (200, 201)
    clock.advance(STALE + DEAD)
    runtime.registry.sweep()


# --- delete one ------------------------------------------------------------------------------


def test_delete_answers_204_and_the_agent_is_gone_from_every_read(
    api: Api, client: FlaskClient
) -> None:
    api.register("agent-1")
    api.register("agent-2")

    response = delete(client, "agent-1")

    assert response.status_code == 204
    assert response.get_data() == b""
    assert "Content-Type" not in response.headers
    assert_error(api.agent("agent-1"), 404, "AGENT_NOT_FOUND")
    assert [a["id"] for a in client.get("/api/v1/agents").json] == ["agent-2"]
    assert client.get("/api/v1/agents?group=group-a&status=live").json[0]["id"] == "agent-2"
    assert fleet_counts(client) == {"LIVE": 1, "STALE": 0, "DEAD": 0, "connected": 0}
    assert_error(client.get("/api/v1/agents/agent-1/commands"), 404, "AGENT_NOT_FOUND")
    assert_error(api.send("agent-1/commands"), 404, "AGENT_NOT_FOUND")


def test_after_a_delete_a_heartbeat_is_404_agent_not_registered(api: Api) -> None:
    api.register("agent-1")
    delete(api.client, "agent-1")

    response = api.heartbeat("agent-1")

    body = assert_error(response, 404, "AGENT_NOT_REGISTERED")
    assert "register" in body["message"]
    assert api.register("agent-1").status_code == 201  # it may register again, as new


def test_deleting_an_unknown_agent_is_404(client: FlaskClient) -> None:
    assert_error(delete(client, "nobody"), 404, "AGENT_NOT_FOUND")
    assert_error(delete(client, "register"), 404, "AGENT_NOT_FOUND")


def test_deleting_twice_is_404_the_second_time(api: Api, client: FlaskClient) -> None:
    api.register("agent-1")
    assert delete(client, "agent-1").status_code == 204
    assert_error(delete(client, "agent-1"), 404, "AGENT_NOT_FOUND")


def test_delete_cancels_the_agents_open_deliveries_and_leaves_final_ones(
    api: Api, client: FlaskClient
) -> None:
    api.register("agent-1")
    api.register("agent-2")
    open_one = send(api, "groups/group-a/commands")
    acked = send(api, "agent-1/commands")
    api.ack("agent-1", acked)

    assert delete(client, "agent-1").status_code == 204

    command = command_of(client, open_one)
    assert statuses(command) == {"agent-1": "CANCELLED", "agent-2": "PENDING"}
    assert command["summary"]["cancelled"] == 1
    assert command["summary"]["pending"] == 1
    cancelled = next(d for d in command["deliveries"] if d["agentId"] == "agent-1")
    assert (cancelled["deliveredAt"], cancelled["acknowledgedAt"], cancelled["result"]) == (
        None,
        None,
        None,
    )
    assert statuses(command_of(client, acked)) == {"agent-1": "ACKNOWLEDGED"}


def test_delete_ends_the_agents_open_stream(api: Api, client: FlaskClient, streams) -> None:
    api.register("agent-1")
    stream = streams("agent-1")
    assert api.agent("agent-1").json["connected"] is True

    assert delete(client, "agent-1").status_code == 204

    assert stream.ended()
    assert fleet_counts(client)["connected"] == 0
    assert_error(client.get("/api/v1/agents/agent-1/events"), 404, "AGENT_NOT_FOUND")


def test_a_command_whose_last_delivery_a_delete_cancelled_is_purged_after_retention(
    api: Api, client: FlaskClient, runtime: Any, clock: FakeClock
) -> None:
    api.register("agent-1")
    command_id = send(api, "agent-1/commands")
    clock.advance(5)
    delete(client, "agent-1")

    clock.advance(runtime.settings.command_retention_seconds - 0.01)
    runtime.commands.purge()
    assert client.get(f"/api/v1/commands/{command_id}").status_code == 200
    clock.advance(0.01)
    runtime.commands.purge()
    assert_error(client.get(f"/api/v1/commands/{command_id}"), 404, "COMMAND_NOT_FOUND")


# --- delete many -----------------------------------------------------------------------------


def test_prune_deletes_every_dead_agent_and_answers_how_many(
    api: Api, client: FlaskClient, runtime: Any, clock: FakeClock
) -> None:
    make_dead(api, clock, runtime, "dead-1", "dead-2")
    api.register("live-1")
    api.register("stale-1")
    clock.advance(STALE)
    runtime.registry.sweep()
    api.heartbeat("live-1")  # LIVE again; stale-1 stays STALE

    response = prune(client, "status=DEAD")

    assert response.status_code == 200
    assert response.json == {"deleted": 2}
    assert [a["id"] for a in client.get("/api/v1/agents").json] == ["live-1", "stale-1"]
    assert fleet_counts(client) == {"LIVE": 1, "STALE": 1, "DEAD": 0, "connected": 0}
    assert prune(client, "status=DEAD").json == {"deleted": 0}


def test_prune_takes_only_agents_dead_for_at_least_dead_for_seconds(
    api: Api, client: FlaskClient, runtime: Any, clock: FakeClock
) -> None:
    make_dead(api, clock, runtime, "old")
    clock.advance(100)
    api.heartbeat("young")  # unknown: nothing happens
    make_dead(api, clock, runtime, "young")
    # old went DEAD 100 + 390 s ago at most; young just now.
    assert prune(client, "status=DEAD&deadForSeconds=400").json == {"deleted": 1}
    assert [a["id"] for a in client.get("/api/v1/agents").json] == ["young"]
    clock.advance(9.5)
    assert prune(client, "status=dead&deadForSeconds=10").json == {"deleted": 0}
    clock.advance(0.5)
    assert prune(client, "status=dead&deadForSeconds=10").json == {"deleted": 1}


def test_prune_cancels_open_deliveries_and_ends_streams_of_the_agents_it_deletes(
    api: Api, client: FlaskClient, runtime: Any, clock: FakeClock, streams
) -> None:
    make_dead(api, clock, runtime, "dead-1")
    stream = streams("dead-1")  # an open stream is not a heartbeat: still DEAD
    command_id = send(api, "dead-1/commands")
    assert b"event: deep-trace" in stream.next_chunk()

    assert prune(client, "status=DEAD").json == {"deleted": 1}

    assert stream.ended()
    assert statuses(command_of(client, command_id)) == {"dead-1": "CANCELLED"}


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("", ["status"]),
        ("deadForSeconds=10", ["status"]),
        ("status=LIVE", ["status"]),
        ("status=STALE,DEAD", ["status"]),
        ("status=DEAD&deadForSeconds=-1", ["deadForSeconds"]),
        ("status=DEAD&deadForSeconds=seven", ["deadForSeconds"]),
        ("status=DEAD&deadForSeconds=inf", ["deadForSeconds"]),
        ("status=DEAD&deadForSeconds=nan", ["deadForSeconds"]),
        ("status=DEAD&group=g", ["group"]),
        ("status=LIVE&deadForSeconds=-1", ["status", "deadForSeconds"]),
    ],
)
def test_prune_validates_its_query_and_deletes_nothing_when_refused(
    api: Api, client: FlaskClient, runtime: Any, clock: FakeClock, query: str, fields: list[str]
) -> None:
    make_dead(api, clock, runtime, "dead-1")

    assert_error(prune(client, query), 400, "VALIDATION_FAILED", fields)

    assert [a["id"] for a in client.get("/api/v1/agents").json] == ["dead-1"]


def test_prune_needs_status_dead_and_says_so(client: FlaskClient) -> None:
    body = assert_error(prune(client, "status=LIVE"), 400, "VALIDATION_FAILED", ["status"])
    assert "DEAD" in body["errors"]["status"][0]


def test_prune_accepts_fractional_seconds(
    api: Api, client: FlaskClient, runtime: Any, clock: FakeClock
) -> None:
    make_dead(api, clock, runtime, "dead-1")
    clock.advance(0.25)
    assert prune(client, "status=DEAD&deadForSeconds=0.5").json == {"deleted": 0}
    assert prune(client, "status=DEAD&deadForSeconds=0.25").json == {"deleted": 1}


# --- cancel ------------------------------------------------------------------------------------


@pytest.fixture
def trio(api: Api) -> None:
    for agent_id in ("agent-1", "agent-2", "agent-3"):
        assert api.register(agent_id, "group-a").status_code == 201


@pytest.mark.usefixtures("trio")
def test_cancel_answers_200_with_the_command_and_every_open_delivery_cancelled(
    api: Api, client: FlaskClient, runtime: Any
) -> None:
    command_id = send(api, "groups/group-a/commands")
    api.ack("agent-1", command_id, status="FAILURE")
    runtime.commands.mark_delivered("agent-2", [command_id])

    response = cancel(client, command_id)

    assert response.status_code == 200
    command = response.json
    assert command["commandId"] == command_id
    assert statuses(command) == {
        "agent-1": "FAILED",
        "agent-2": "CANCELLED",
        "agent-3": "CANCELLED",
    }
    assert command["summary"] == {
        "targets": 3,
        "pending": 0,
        "delivered": 0,
        "acknowledged": 0,
        "failed": 1,
        "expired": 0,
        "cancelled": 2,
    }
    delivered = next(d for d in command["deliveries"] if d["agentId"] == "agent-2")
    assert delivered["deliveredAt"] is not None  # it was written before it was cancelled
    assert command_of(client, command_id) == command
    listed = client.get("/api/v1/agents/agent-3/commands?status=cancelled").json
    assert [(d["commandId"], d["status"]) for d in listed] == [(command_id, "CANCELLED")]


@pytest.mark.usefixtures("trio")
def test_each_target_with_an_open_stream_receives_the_cancel_event(
    api: Api, client: FlaskClient, streams
) -> None:
    first, second = streams("agent-1"), streams("agent-2")
    command_id = send(api, "groups/group-a/commands")
    assert first.next_chunk().startswith(f"id: {command_id}\n".encode())
    assert second.next_chunk().startswith(f"id: {command_id}\n".encode())

    assert cancel(client, command_id).status_code == 200

    expected = f'event: cancel\ndata: {{"commandId":"{command_id}"}}\n\n'.encode()
    assert first.next_chunk() == expected
    assert second.next_chunk() == expected
    assert json.loads(expected.split(b"data: ")[1]) == {"commandId": command_id}


@pytest.mark.usefixtures("trio")
def test_a_target_that_already_acknowledged_gets_no_cancel_event(
    api: Api, client: FlaskClient, streams
) -> None:
    acked, other = streams("agent-1"), streams("agent-2")
    command_id = send(api, "groups/group-a/commands")
    acked.next_chunk()
    other.next_chunk()
    api.ack("agent-1", command_id)

    cancel(client, command_id)
    assert b"event: cancel" in other.next_chunk()
    # Sent after the cancel: the acknowledged target's next event is the next command.
    later = send(api, "agent-1/commands")
    assert acked.next_chunk().startswith(f"id: {later}\n".encode())


@pytest.mark.usefixtures("trio")
def test_a_later_ack_of_a_cancelled_delivery_is_409_command_cancelled(
    api: Api, client: FlaskClient
) -> None:
    command_id = send(api, "groups/group-a/commands")
    api.ack("agent-1", command_id)
    cancel(client, command_id)

    for status in ("SUCCESS", "FAILURE"):
        assert_error(api.ack("agent-2", command_id, status=status), 409, "COMMAND_CANCELLED")
    assert api.ack("agent-1", command_id).status_code == 200  # the same status again
    assert_error(api.ack("agent-1", command_id, status="FAILURE"), 409, "ALREADY_ACKNOWLEDGED")
    assert statuses(command_of(client, command_id))["agent-2"] == "CANCELLED"


@pytest.mark.usefixtures("trio")
def test_cancelling_a_command_whose_deliveries_are_all_final_changes_nothing(
    api: Api, client: FlaskClient, runtime: Any, clock: FakeClock, streams
) -> None:
    stream = streams("agent-1")
    command_id = send(api, "groups/group-a/commands")
    stream.next_chunk()
    api.ack("agent-1", command_id)
    clock.advance(runtime.settings.command_expiry_seconds)
    runtime.commands.expire()
    before = command_of(client, command_id)

    response = cancel(client, command_id)

    assert response.status_code == 200
    assert response.json == before
    again = send(api, "agent-1/commands")  # no cancel event was queued before it
    assert stream.next_chunk().startswith(f"id: {again}\n".encode())


@pytest.mark.usefixtures("trio")
def test_cancelling_twice_answers_the_same_and_sends_one_cancel_event(
    api: Api, client: FlaskClient, streams
) -> None:
    stream = streams("agent-1")
    command_id = send(api, "agent-1/commands")
    stream.next_chunk()
    first = cancel(client, command_id).json
    assert b"event: cancel" in stream.next_chunk()

    assert cancel(client, command_id).json == first
    again = send(api, "agent-1/commands")
    assert stream.next_chunk().startswith(f"id: {again}\n".encode())


def test_cancelling_an_unknown_command_is_404(client: FlaskClient) -> None:
    assert_error(cancel(client, "no-such-command"), 404, "COMMAND_NOT_FOUND")


@pytest.mark.usefixtures("trio")
def test_cancel_takes_no_body_or_an_empty_object(api: Api, client: FlaskClient) -> None:
    first = send(api, "agent-1/commands")
    second = send(api, "agent-2/commands")
    assert cancel(client, first, json={}).status_code == 200
    assert cancel(client, second, data=b"").status_code == 200
    third = send(api, "agent-3/commands")
    assert_error(cancel(client, third, json={"reason": "x"}), 400, "VALIDATION_FAILED", ["reason"])
    assert_error(
        cancel(client, third, data="{}", content_type="text/plain"), 415, "UNSUPPORTED_MEDIA_TYPE"
    )
    assert_error(
        client.post(f"/api/v1/commands/{third}/cancel?now=1"), 400, "VALIDATION_FAILED", ["now"]
    )
    assert statuses(command_of(client, third)) == {"agent-3": "PENDING"}  # refused: unchanged


@pytest.mark.usefixtures("trio")
def test_a_cancelled_command_is_purged_after_retention_from_the_cancel(
    api: Api, client: FlaskClient, runtime: Any, clock: FakeClock
) -> None:
    command_id = send(api, "groups/group-a/commands")
    clock.advance(10)
    cancel(client, command_id)
    clock.advance(runtime.settings.command_retention_seconds - 0.01)
    runtime.commands.purge()
    assert client.get(f"/api/v1/commands/{command_id}").status_code == 200
    clock.advance(0.01)
    runtime.commands.purge()
    assert_error(client.get(f"/api/v1/commands/{command_id}"), 404, "COMMAND_NOT_FOUND")
    assert client.get("/api/v1/agents/agent-1/commands").json == []


@pytest.mark.usefixtures("trio")
def test_cancelled_deliveries_are_counted_in_the_deliveries_metric(
    api: Api, client: FlaskClient
) -> None:
    command_id = send(api, "groups/group-a/commands")
    api.ack("agent-1", command_id)
    cancel(client, command_id)
    api.register("agent-4", "group-b")
    send(api, "agent-4/commands")
    delete(client, "agent-4")

    text = client.get("/metrics").get_data(as_text=True)

    assert 'agent_registry_deliveries_total{status="CANCELLED"} 3.0' in text
    assert 'agent_registry_deliveries_total{status="ACKNOWLEDGED"} 1.0' in text

"""Rollouts through the HTTP API (API.md § Fleet operations, "Rollout"), on both stores."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from harness.api_actions import Api
from tests.api import assert_error

IDS = [f"r{n}" for n in range(5)]
T0_ISO = "2026-03-11T10:15:30.000Z"


@pytest.fixture
def five(api: Api) -> list[str]:
    for agent_id in IDS:
        assert api.register(agent_id, "roll").status_code == 201
    return IDS


def send(client: FlaskClient, rollout: Any, path: str = "groups/roll/commands", **body: Any):
    return client.post(
        f"/api/v1/agents/{path}", json={"type": "deep-trace", "rollout": rollout, **body}
    )


def read(client: FlaskClient, command_id: str) -> dict[str, Any]:
    answer = client.get(f"/api/v1/commands/{command_id}")
    assert answer.status_code == 200
    return answer.json


def sent_ids(command: dict[str, Any]) -> list[str]:
    return [d["agentId"] for d in command["deliveries"] if d["sentAt"] is not None]


@pytest.mark.usefixtures("five")
def test_a_rollout_sends_its_first_batch_and_shows_the_rest_unsent(client):
    answer = send(client, {"batchSize": 2, "maxFailures": "20%", "batchIntervalSeconds": 0})

    assert answer.status_code == 202
    command = answer.json
    assert command["state"] == "RUNNING"
    assert command["expiresAt"] is None
    assert command["rollout"] == {
        "batchSize": 2,
        "maxFailures": 1,
        "batchIntervalSeconds": 0.0,
        "sent": 2,
        "inFlight": 2,
        "failures": 0,
    }
    assert sent_ids(command) == ["r0", "r1"]
    unsent = [d for d in command["deliveries"] if d["sentAt"] is None]
    assert [d["status"] for d in unsent] == ["PENDING"] * 3
    assert command["summary"]["pending"] == 5
    assert read(client, command["commandId"]) == command


@pytest.mark.usefixtures("five")
def test_acks_slide_the_window_until_the_rollout_completes(api, client, clock):
    command_id = send(client, {"batchSize": "40%"}).json["commandId"]  # 2 of 5
    for expected_sent in (3, 4, 5, 5, 5):
        clock.advance(1)
        first_in_flight = next(
            d["agentId"]
            for d in read(client, command_id)["deliveries"]
            if d["sentAt"] is not None and d["status"] == "PENDING"
        )
        assert api.ack(first_in_flight, command_id).status_code == 200
        command = read(client, command_id)
        assert command["rollout"]["sent"] == expected_sent
        assert command["rollout"]["inFlight"] <= 2

    command = read(client, command_id)
    assert command["state"] == "COMPLETED"
    assert command["expiresAt"] == "2026-03-11T10:16:33.000Z"  # the last one sent at T0 + 3
    assert [d["sentAt"] for d in command["deliveries"]] == [
        T0_ISO,
        T0_ISO,
        "2026-03-11T10:15:31.000Z",
        "2026-03-11T10:15:32.000Z",
        "2026-03-11T10:15:33.000Z",
    ]


@pytest.mark.usefixtures("five")
def test_the_failure_limit_stops_the_rollout(api, client):
    command_id = send(client, {"batchSize": 1, "maxFailures": 0}).json["commandId"]
    assert api.ack("r0", command_id, status="FAILURE").status_code == 200

    command = read(client, command_id)
    assert command["state"] == "STOPPED"
    assert [d["status"] for d in command["deliveries"]] == ["FAILED"] + ["CANCELLED"] * 4
    assert command["rollout"]["failures"] == 1
    late = api.ack("r3", command_id)
    assert_error(late, 409, "COMMAND_CANCELLED")


@pytest.mark.usefixtures("five")
def test_each_delivery_expires_after_its_own_sent_at(api, client, runtime, clock):
    command_id = send(client, {"batchSize": 1}).json["commandId"]
    clock.advance(30)
    api.ack("r0", command_id)  # r1 sent at T0 + 30
    listed = client.get("/api/v1/agents/r1/commands").json
    assert listed[0]["sentAt"] == "2026-03-11T10:16:00.000Z"
    assert listed[0]["expiresAt"] == "2026-03-11T10:17:00.000Z"
    assert client.get("/api/v1/agents/r4/commands").json[0]["expiresAt"] is None
    clock.advance(45)  # past T0 + 60, before T0 + 90
    runtime.commands.expire()
    assert api.ack("r1", command_id).status_code == 200


@pytest.mark.usefixtures("five")
def test_cancelling_a_rollout_cancels_its_unsent_targets(api, client, runtime, clock):
    command_id = send(client, {"batchSize": 2, "batchIntervalSeconds": 10}).json["commandId"]
    answer = client.post(f"/api/v1/commands/{command_id}/cancel")

    assert answer.status_code == 200
    assert answer.json["state"] == "CANCELLED"
    assert answer.json["summary"]["cancelled"] == 5
    clock.advance(20)
    runtime.sweeper.sweep_commands()
    assert read(client, command_id)["rollout"]["sent"] == 2


@pytest.mark.usefixtures("five")
def test_deleting_a_target_in_flight_sends_the_next(client):
    command_id = send(client, {"batchSize": 2}).json["commandId"]
    assert client.delete("/api/v1/agents/r0").status_code == 204

    assert sent_ids(read(client, command_id)) == ["r0", "r1", "r2"]


@pytest.mark.usefixtures("five")
def test_the_sweep_advances_a_rollout_after_its_batch_interval(api, client, runtime, clock):
    command_id = send(client, {"batchSize": 1, "batchIntervalSeconds": 2.5}).json["commandId"]
    api.ack("r0", command_id)
    clock.advance(2.4)
    runtime.sweeper.sweep_commands()
    assert read(client, command_id)["rollout"]["sent"] == 1
    clock.advance(0.1)
    runtime.sweeper.sweep_commands()
    assert read(client, command_id)["rollout"]["sent"] == 2


@pytest.mark.usefixtures("five")
def test_a_send_to_all_takes_a_rollout_too(client):
    answer = send(client, {"batchSize": "100%"}, path="commands")
    assert answer.status_code == 202
    assert answer.json["rollout"]["sent"] == 5
    assert answer.json["expiresAt"] is not None


@pytest.mark.usefixtures("five")
def test_commands_without_a_rollout_have_a_state_and_no_rollout(api, client):
    command = client.post("/api/v1/agents/groups/roll/commands", json={"type": "replay"}).json
    assert (command["state"], command["rollout"]) == ("RUNNING", None)
    assert {d["sentAt"] for d in command["deliveries"]} == {command["createdAt"]}


# --- validation ---------------------------------------------------------------------------


@pytest.mark.usefixtures("five")
def test_a_rollout_on_a_single_agent_command_is_400_and_sends_nothing(client):
    answer = send(client, {"batchSize": 1}, path="r0/commands")
    assert_error(answer, 400, "VALIDATION_FAILED", {"rollout"})
    assert client.get("/api/v1/agents/r0/commands").json == []


def test_a_rollout_on_an_unknown_single_agent_is_400_not_404(client):
    answer = send(client, {"batchSize": 1}, path="nobody/commands")
    assert_error(answer, 400, "VALIDATION_FAILED", {"rollout"})


@pytest.mark.parametrize(
    ("rollout", "fields"),
    [
        ({}, {"rollout.batchSize"}),
        ({"batchSize": 0}, {"rollout.batchSize"}),
        ({"batchSize": "0%"}, {"rollout.batchSize"}),
        ({"batchSize": "101%"}, {"rollout.batchSize"}),
        ({"batchSize": "ten"}, {"rollout.batchSize"}),
        ({"batchSize": "10"}, {"rollout.batchSize"}),
        ({"batchSize": 2.5}, {"rollout.batchSize"}),
        ({"batchSize": True}, {"rollout.batchSize"}),
        ({"batchSize": 1, "maxFailures": -1}, {"rollout.maxFailures"}),
        ({"batchSize": 1, "maxFailures": "150%"}, {"rollout.maxFailures"}),
        ({"batchSize": 1, "batchIntervalSeconds": -1}, {"rollout.batchIntervalSeconds"}),
        ({"batchSize": 1, "batchIntervalSeconds": "soon"}, {"rollout.batchIntervalSeconds"}),
        ({"batchSize": 1, "batch": 2}, {"rollout.batch"}),
        ({"batchSize": 0, "maxFailures": -1}, {"rollout.batchSize", "rollout.maxFailures"}),
        ("10%", {"rollout._schema"}),
    ],
)
@pytest.mark.usefixtures("five")
def test_invalid_rollouts_are_400_naming_every_wrong_field(client, rollout, fields):
    assert_error(send(client, rollout), 400, "VALIDATION_FAILED", fields)
    assert client.get("/api/v1/agents/r0/commands").json == []


@pytest.mark.usefixtures("five")
def test_a_null_rollout_is_no_rollout(client):
    answer = send(client, None)
    assert answer.status_code == 202
    assert answer.json["rollout"] is None


def test_the_openapi_document_describes_the_rollout(client):
    document = client.get("/api/v1/openapi.json").json
    schemas = document["components"]["schemas"]
    rollout = schemas["Rollout"]
    assert set(rollout["properties"]) == {"batchSize", "maxFailures", "batchIntervalSeconds"}
    assert rollout["required"] == ["batchSize"]
    assert "state" in schemas["Command"]["properties"]
    assert "sentAt" in schemas["Delivery"]["properties"]

"""API.md, Commands, Acknowledge and Read: sending to one agent, a group or everyone; acks;
reading a command and an agent's deliveries; expiry and retention driven by the fake clock
and direct calls to the expiry and purge sweeps.

No event stream is opened here: every delivery stays PENDING unless a test marks it
written with ``runtime.commands.mark_delivered`` (what the stream writer calls)."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from harness.api_actions import Api
from tests.api import COMMAND_KEYS, DELIVERY_KEYS, ISO_MS, SUMMARY_KEYS, assert_error, iso

COMMAND_TYPES = ["config-update", "deep-trace", "replay"]
DELIVERY_STATUSES = ["PENDING", "DELIVERED", "ACKNOWLEDGED", "FAILED", "EXPIRED", "CANCELLED"]
AGENT_DELIVERY_KEYS = DELIVERY_KEYS | {"commandId", "type", "createdAt", "expiresAt"}


def _send(
    api: Api, path: str = "agent-1/commands", command_type: str = "deep-trace", payload: Any = None
) -> dict[str, Any]:
    response = api.send(path, command_type, payload)
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.json


def _command(client: FlaskClient, command_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/commands/{command_id}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def _delivery(client: FlaskClient, command_id: str, agent_id: str = "agent-1") -> dict[str, Any]:
    (found,) = [d for d in _command(client, command_id)["deliveries"] if d["agentId"] == agent_id]
    return found


def _agent_commands(client: FlaskClient, agent_id: str = "agent-1", **query: str) -> list[Any]:
    response = client.get(f"/api/v1/agents/{agent_id}/commands", query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def _expected_summary(deliveries: list[dict[str, Any]]) -> dict[str, int]:
    counts = {status.lower(): 0 for status in DELIVERY_STATUSES}
    for delivery in deliveries:
        counts[delivery["status"].lower()] += 1
    return {"targets": len(deliveries), **counts}


@pytest.fixture
def trio(api: Api) -> None:
    """agent-1 and agent-2 in group-a, agent-3 in group-b, all LIVE."""
    for agent_id, group in (("agent-1", "group-a"), ("agent-2", "group-a"), ("agent-3", "group-b")):
        assert api.register(agent_id, group).status_code == 201


@pytest.fixture
def sent(api: Api, trio: None) -> str:
    """A deep-trace command to agent-1, PENDING."""
    return _send(api)["commandId"]


# --- send ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "target", "agents"),
    [
        pytest.param(
            "agent-1/commands", {"kind": "agent", "value": "agent-1"}, ["agent-1"], id="agent"
        ),
        pytest.param(
            "groups/group-a/commands",
            {"kind": "group", "value": "group-a"},
            ["agent-1", "agent-2"],
            id="group",
        ),
        pytest.param(
            "commands", {"kind": "all", "value": None}, ["agent-1", "agent-2", "agent-3"], id="all"
        ),
    ],
)
@pytest.mark.usefixtures("trio")
def test_send_answers_202_with_the_command(
    api: Api, client: FlaskClient, clock, path: str, target: dict[str, Any], agents: list[str]
) -> None:
    clock.advance(0.25)
    payload = {"durationSeconds": 30, "routes": ["route-a"], "nested": {"on": True}}
    response = api.send(path, "deep-trace", payload)
    assert response.status_code == 202
    command = response.json
    assert set(command) == COMMAND_KEYS
    assert isinstance(command["commandId"], str) and command["commandId"]
    assert command["type"] == "deep-trace"
    assert command["payload"] == payload
    assert command["target"] == target
    assert command["createdAt"] == "2026-03-11T10:15:30.250Z"
    assert command["expiresAt"] == "2026-03-11T10:16:30.250Z"
    assert sorted(d["agentId"] for d in command["deliveries"]) == agents
    for delivery in command["deliveries"]:
        assert delivery == {
            "agentId": delivery["agentId"],
            "status": "PENDING",
            "sentAt": "2026-03-11T10:15:30.250Z",
            "deliveredAt": None,
            "acknowledgedAt": None,
            "result": None,
        }
    assert set(command["summary"]) == SUMMARY_KEYS
    assert command["summary"] == {
        "targets": len(agents),
        "pending": len(agents),
        "delivered": 0,
        "acknowledged": 0,
        "failed": 0,
        "expired": 0,
        "cancelled": 0,
    }
    assert _command(client, command["commandId"]) == command


@pytest.mark.parametrize("path", ["groups/group-a/commands", "commands"])
@pytest.mark.usefixtures("trio")
def test_one_command_id_covers_every_target(api: Api, client: FlaskClient, path: str) -> None:
    command = _send(api, path)
    targets = [d["agentId"] for d in command["deliveries"]]
    assert len(targets) >= 2
    for agent_id in targets:
        listed = _agent_commands(client, agent_id)
        assert [item["commandId"] for item in listed] == [command["commandId"]]
    assert _send(api, path)["commandId"] != command["commandId"]


@pytest.mark.parametrize("command_type", COMMAND_TYPES)
@pytest.mark.usefixtures("trio")
def test_every_documented_type_is_accepted(api: Api, command_type: str) -> None:
    assert _send(api, command_type=command_type)["type"] == command_type


@pytest.mark.parametrize("command_type", ["nope", "DEEP_TRACE", "deep trace", "", 5, None])
@pytest.mark.usefixtures("trio")
def test_unknown_type_is_400_listing_the_valid_ones(
    api: Api, client: FlaskClient, command_type: Any
) -> None:
    body = assert_error(
        api.send("agent-1/commands", command_type), 400, "VALIDATION_FAILED", {"type"}
    )
    if isinstance(command_type, str) and command_type:
        reasons = " ".join(body["errors"]["type"])
        assert all(valid in reasons for valid in COMMAND_TYPES), reasons
    assert _agent_commands(client) == []


@pytest.mark.usefixtures("trio")
def test_type_is_required(client: FlaskClient) -> None:
    response = client.post("/api/v1/agents/agent-1/commands", json={"payload": {}})
    assert_error(response, 400, "VALIDATION_FAILED", {"type"})


@pytest.mark.parametrize("payload", [[], ["a"], "text", 1, True, None], ids=repr)
@pytest.mark.usefixtures("trio")
def test_payload_must_be_an_object(client: FlaskClient, payload: Any) -> None:
    response = client.post(
        "/api/v1/agents/agent-1/commands", json={"type": "replay", "payload": payload}
    )
    assert_error(response, 400, "VALIDATION_FAILED", {"payload"})
    assert _agent_commands(client) == []


@pytest.mark.usefixtures("trio")
def test_payload_defaults_to_an_empty_object(api: Api, client: FlaskClient) -> None:
    command = _send(api, payload=None)
    assert command["payload"] == {}
    assert _command(client, command["commandId"])["payload"] == {}


def test_expiry_follows_the_configured_fractional_seconds(make_app, clock) -> None:
    api = Api(make_app(command_expiry_seconds=2.5).test_client())
    api.register()
    command = _send(api)
    assert (command["createdAt"], command["expiresAt"]) == (iso(clock.now), iso(clock.now + 2.5))
    assert ISO_MS.match(command["createdAt"]) and ISO_MS.match(command["expiresAt"])


@pytest.mark.usefixtures("trio")
def test_send_to_an_unknown_agent_is_404(api: Api) -> None:
    assert_error(api.send("ghost/commands"), 404, "AGENT_NOT_FOUND")


def _make_stale(runtime, clock, api: Api, keep_live: tuple[str, ...] = ()) -> None:
    """Everyone goes STALE except ``keep_live`` (heartbeats just before the sweep)."""
    clock.advance(85)
    for agent_id in keep_live:
        assert api.heartbeat(agent_id).status_code == 204
    clock.advance(10)
    runtime.registry.sweep()


@pytest.mark.parametrize(
    ("path", "setup"),
    [
        pytest.param("groups/nobody/commands", "live", id="unknown-group"),
        pytest.param("groups/group-b/commands", "a-stale", id="group-all-stale"),
        pytest.param("commands", "empty", id="all-empty-registry"),
        pytest.param("commands", "stale", id="all-stale"),
        pytest.param("commands", "dead", id="all-dead"),
    ],
)
def test_group_or_all_without_a_live_agent_is_404(
    api: Api, client: FlaskClient, runtime, clock, path: str, setup: str
) -> None:
    if setup != "empty":
        for agent_id, group in (("agent-1", "group-a"), ("agent-3", "group-b")):
            api.register(agent_id, group)
    if setup == "a-stale":
        _make_stale(runtime, clock, api, keep_live=("agent-1",))
    elif setup in ("stale", "dead"):
        clock.advance(95 if setup == "stale" else 400)
        runtime.registry.sweep()
    body = assert_error(api.send(path), 404, "NO_LIVE_TARGETS")
    assert body["message"]
    if setup != "empty":
        assert _agent_commands(client, "agent-3") == []


@pytest.mark.usefixtures("trio")
def test_group_and_all_target_only_live_agents(
    api: Api, client: FlaskClient, runtime, clock
) -> None:
    _make_stale(runtime, clock, api, keep_live=("agent-1", "agent-3"))
    assert api.agent("agent-2").json["state"] == "STALE"
    group = _send(api, "groups/group-a/commands")
    assert [d["agentId"] for d in group["deliveries"]] == ["agent-1"]
    assert group["summary"]["targets"] == 1
    everyone = _send(api, "commands")
    assert sorted(d["agentId"] for d in everyone["deliveries"]) == ["agent-1", "agent-3"]
    assert _agent_commands(client, "agent-2") == []


@pytest.mark.parametrize(("pause", "state"), [(95, "STALE"), (400, "DEAD")])
@pytest.mark.usefixtures("trio")
def test_a_single_target_is_sent_to_in_any_state(
    api: Api, runtime, clock, pause: float, state: str
) -> None:
    clock.advance(pause)
    runtime.registry.sweep()
    assert api.agent().json["state"] == state
    command = _send(api)
    assert [(d["agentId"], d["status"]) for d in command["deliveries"]] == [("agent-1", "PENDING")]


@pytest.mark.usefixtures("trio")
def test_group_send_follows_a_group_change(api: Api) -> None:
    api.register("agent-3", "group-a")
    assert_error(api.send("groups/group-b/commands"), 404, "NO_LIVE_TARGETS")
    command = _send(api, "groups/group-a/commands")
    assert sorted(d["agentId"] for d in command["deliveries"]) == ["agent-1", "agent-2", "agent-3"]


# --- acknowledge ------------------------------------------------------------------------------


def test_ack_without_body_is_success_with_null_message_and_empty_details(
    api: Api, client: FlaskClient, clock, sent: str
) -> None:
    clock.advance(3.5)
    response = api.ack("agent-1", sent)
    assert response.status_code == 200
    assert response.json == {
        "agentId": "agent-1",
        "status": "ACKNOWLEDGED",
        "sentAt": "2026-03-11T10:15:30.000Z",
        "deliveredAt": None,
        "acknowledgedAt": "2026-03-11T10:15:33.500Z",
        "result": {"status": "SUCCESS", "message": None, "details": {}},
    }
    assert _delivery(client, sent) == response.json


@pytest.mark.parametrize(
    ("given", "status", "result"),
    [
        ("SUCCESS", "ACKNOWLEDGED", "SUCCESS"),
        ("success", "ACKNOWLEDGED", "SUCCESS"),
        ("Success", "ACKNOWLEDGED", "SUCCESS"),
        ("FAILURE", "FAILED", "FAILURE"),
        ("failure", "FAILED", "FAILURE"),
        ("fAiLuRe", "FAILED", "FAILURE"),
    ],
)
def test_ack_status_is_case_insensitive_in_and_upper_case_out(
    api: Api, client: FlaskClient, sent: str, given: str, status: str, result: str
) -> None:
    response = api.ack("agent-1", sent, status=given)
    assert response.status_code == 200
    assert (response.json["status"], response.json["result"]["status"]) == (status, result)
    assert _delivery(client, sent)["result"]["status"] == result


def test_ack_keeps_message_and_details(api: Api, client: FlaskClient, sent: str) -> None:
    details = {"tracedSpans": 12, "routes": ["a"], "nested": {"x": None}}
    response = api.ack("agent-1", sent, status="FAILURE", message="m" * 4096, details=details)
    assert response.status_code == 200
    assert response.json["result"] == {
        "status": "FAILURE",
        "message": "m" * 4096,
        "details": details,
    }
    assert _delivery(client, sent)["result"] == response.json["result"]


def test_ack_of_a_delivered_command_keeps_delivered_at(
    api: Api, client: FlaskClient, runtime, clock, sent: str
) -> None:
    start = clock.now
    clock.advance(1)
    runtime.commands.mark_delivered("agent-1", [sent])
    assert _delivery(client, sent)["status"] == "DELIVERED"
    clock.advance(1)
    delivery = api.ack("agent-1", sent).json
    assert (delivery["status"], delivery["deliveredAt"], delivery["acknowledgedAt"]) == (
        "ACKNOWLEDGED",
        iso(start + 1),
        iso(start + 2),
    )


@pytest.mark.parametrize("status", ["SUCCESS", "FAILURE"])
def test_a_repeated_ack_with_the_same_status_changes_nothing(
    api: Api, client: FlaskClient, clock, sent: str, status: str
) -> None:
    first = api.ack("agent-1", sent, status=status, message="first", details={"n": 1})
    assert first.status_code == 200
    clock.advance(5)
    again = api.ack("agent-1", sent, status=status.lower(), message="second", details={"n": 2})
    assert again.status_code == 200
    assert again.json == first.json
    assert _delivery(client, sent) == first.json


@pytest.mark.parametrize(("first", "second"), [("SUCCESS", "FAILURE"), ("FAILURE", "success")])
def test_a_different_status_after_an_ack_is_409(
    api: Api, client: FlaskClient, sent: str, first: str, second: str
) -> None:
    recorded = api.ack("agent-1", sent, status=first).json
    assert_error(api.ack("agent-1", sent, status=second), 409, "ALREADY_ACKNOWLEDGED")
    assert _delivery(client, sent) == recorded


@pytest.mark.parametrize("swept", [False, True], ids=["before-sweep", "after-sweep"])
@pytest.mark.parametrize("status", ["SUCCESS", "FAILURE"])
def test_repeat_rules_hold_after_expires_at(
    api: Api, client: FlaskClient, runtime, clock, sent: str, status: str, swept: bool
) -> None:
    clock.advance(10)
    recorded = api.ack("agent-1", sent, status=status).json
    clock.advance(3600)
    if swept:
        runtime.commands.expire()
    same = api.ack("agent-1", sent, status=status)
    assert (same.status_code, same.json) == (200, recorded)
    other = "FAILURE" if status == "SUCCESS" else "SUCCESS"
    assert_error(api.ack("agent-1", sent, status=other), 409, "ALREADY_ACKNOWLEDGED")
    assert _delivery(client, sent) == recorded


@pytest.mark.parametrize("status", ["SUCCESS", "FAILURE"])
def test_ack_after_expires_at_is_409_even_before_a_sweep(
    api: Api, client: FlaskClient, clock, sent: str, status: str
) -> None:
    clock.advance(60.001)
    assert_error(api.ack("agent-1", sent, status=status), 409, "COMMAND_EXPIRED")
    delivery = _delivery(client, sent)
    assert delivery["status"] in ("PENDING", "EXPIRED")
    assert (delivery["acknowledgedAt"], delivery["result"]) == (None, None)


def test_ack_just_before_expires_at_is_accepted(api: Api, clock, sent: str) -> None:
    clock.advance(59.999)
    assert api.ack("agent-1", sent).json["status"] == "ACKNOWLEDGED"


def test_expiry_sweep_marks_undelivered_commands_expired(
    api: Api, client: FlaskClient, runtime, clock, sent: str
) -> None:
    clock.advance(59.9)
    runtime.commands.expire()
    assert _delivery(client, sent)["status"] == "PENDING"
    clock.advance(1.1)
    runtime.commands.expire()
    command = _command(client, sent)
    assert command["deliveries"] == [
        {
            "agentId": "agent-1",
            "status": "EXPIRED",
            "sentAt": "2026-03-11T10:15:30.000Z",
            "deliveredAt": None,
            "acknowledgedAt": None,
            "result": None,
        }
    ]
    assert command["summary"] == {
        "targets": 1,
        "pending": 0,
        "delivered": 0,
        "acknowledged": 0,
        "failed": 0,
        "expired": 1,
        "cancelled": 0,
    }
    for status in ("SUCCESS", "FAILURE"):
        assert_error(api.ack("agent-1", sent, status=status), 409, "COMMAND_EXPIRED")


def test_expiry_of_a_delivered_command_keeps_delivered_at(
    client: FlaskClient, runtime, clock, sent: str
) -> None:
    start = clock.now
    clock.advance(5)
    runtime.commands.mark_delivered("agent-1", [sent])
    clock.advance(60)
    runtime.commands.expire()
    delivery = _delivery(client, sent)
    assert (delivery["status"], delivery["deliveredAt"], delivery["result"]) == (
        "EXPIRED",
        iso(start + 5),
        None,
    )


@pytest.mark.usefixtures("trio")
def test_expiry_leaves_acknowledged_deliveries_alone(
    api: Api, client: FlaskClient, runtime, clock
) -> None:
    command_id = _send(api, "groups/group-a/commands")["commandId"]
    acked = api.ack("agent-1", command_id).json
    clock.advance(61)
    runtime.commands.expire()
    command = _command(client, command_id)
    assert _delivery(client, command_id, "agent-1") == acked
    assert _delivery(client, command_id, "agent-2")["status"] == "EXPIRED"
    assert command["summary"] == {
        "targets": 2,
        "pending": 0,
        "delivered": 0,
        "acknowledged": 1,
        "failed": 0,
        "expired": 1,
        "cancelled": 0,
    }


def test_ack_from_an_unknown_agent_is_404(api: Api, sent: str) -> None:
    assert_error(api.ack("ghost", sent), 404, "AGENT_NOT_FOUND")


@pytest.mark.parametrize("who", ["unknown-id", "other-agent", "other-group"])
@pytest.mark.usefixtures("trio")
def test_ack_of_a_command_not_addressed_to_the_agent_is_404(
    api: Api, client: FlaskClient, who: str
) -> None:
    if who == "unknown-id":
        _send(api)
        agent_id, command_id = "agent-1", "0192f8c4-0000-7000-8000-000000000000"
    elif who == "other-agent":
        agent_id, command_id = "agent-2", _send(api)["commandId"]
    else:
        agent_id, command_id = "agent-3", _send(api, "groups/group-a/commands")["commandId"]
    assert_error(api.ack(agent_id, command_id), 404, "COMMAND_NOT_FOUND")
    if who != "unknown-id":
        assert {d["status"] for d in _command(client, command_id)["deliveries"]} == {"PENDING"}


@pytest.mark.parametrize(
    ("body", "wrong"),
    [
        pytest.param({"message": "m" * 4097}, {"message"}, id="message-4097"),
        pytest.param({"message": 5}, {"message"}, id="message-not-string"),
        pytest.param({"status": "MAYBE"}, {"status"}, id="unknown-status"),
        pytest.param({"status": "ACKNOWLEDGED"}, {"status"}, id="delivery-status"),
        pytest.param({"status": 1}, {"status"}, id="status-not-string"),
        pytest.param({"details": []}, {"details"}, id="details-array"),
        pytest.param({"details": "x"}, {"details"}, id="details-string"),
        pytest.param(
            {"status": "nope", "message": "m" * 4097, "details": 1, "extra": 1},
            {"status", "message", "details", "extra"},
            id="all-at-once",
        ),
    ],
)
def test_ack_body_is_validated(
    api: Api, client: FlaskClient, sent: str, body: dict[str, Any], wrong: set[str]
) -> None:
    assert_error(api.ack("agent-1", sent, **body), 400, "VALIDATION_FAILED", wrong)
    assert _delivery(client, sent)["status"] == "PENDING"


def test_ack_message_over_4096_is_400_even_for_an_unknown_command(api: Api, trio: None) -> None:
    response = api.ack("agent-1", "no-such-command", message="m" * 4097)
    assert_error(response, 400, "VALIDATION_FAILED", {"message"})


# --- read -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("trio")
def test_command_summary_matches_its_deliveries(
    api: Api, client: FlaskClient, runtime, clock
) -> None:
    api.register("agent-4", "group-a")
    command_id = _send(api, "groups/group-a/commands")["commandId"]
    api.ack("agent-1", command_id)
    api.ack("agent-2", command_id, status="FAILURE")
    runtime.commands.mark_delivered("agent-4", [command_id])
    command = _command(client, command_id)
    by_agent = {d["agentId"]: d["status"] for d in command["deliveries"]}
    assert by_agent == {"agent-1": "ACKNOWLEDGED", "agent-2": "FAILED", "agent-4": "DELIVERED"}
    assert command["summary"] == _expected_summary(command["deliveries"])
    assert command["summary"] == {
        "targets": 3,
        "pending": 0,
        "delivered": 1,
        "acknowledged": 1,
        "failed": 1,
        "expired": 0,
        "cancelled": 0,
    }
    api.register("agent-5", "group-a")
    second = _send(api, "groups/group-a/commands")["commandId"]
    api.ack("agent-5", second)
    clock.advance(61)
    runtime.commands.expire()
    for cid, expected in (
        (command_id, {"delivered": 0, "expired": 1}),
        (second, {"pending": 0, "expired": 3}),
    ):
        read = _command(client, cid)
        assert read["summary"] == _expected_summary(read["deliveries"])
        assert {key: read["summary"][key] for key in expected} == expected


def test_reading_an_unknown_command_is_404(client: FlaskClient) -> None:
    response = client.get("/api/v1/commands/0192f8c4-0000-7000-8000-000000000000")
    assert_error(response, 404, "COMMAND_NOT_FOUND")


@pytest.mark.usefixtures("trio")
def test_agent_commands_are_newest_first_with_command_fields(
    api: Api, client: FlaskClient, clock
) -> None:
    sent = []
    for command_type, path in (
        ("replay", "agent-1/commands"),
        ("config-update", "groups/group-a/commands"),
        ("deep-trace", "commands"),
        ("replay", "agent-1/commands"),
    ):
        clock.advance(1.5)
        sent.append(_send(api, path, command_type))
    _send(api, "agent-2/commands")
    listed = _agent_commands(client)
    assert [item["commandId"] for item in listed] == [c["commandId"] for c in reversed(sent)]
    for item, command in zip(listed, reversed(sent), strict=True):
        assert set(item) == AGENT_DELIVERY_KEYS
        assert {key: item[key] for key in ("type", "createdAt", "expiresAt")} == {
            key: command[key] for key in ("type", "createdAt", "expiresAt")
        }
        assert {key: item[key] for key in DELIVERY_KEYS} == _delivery(client, command["commandId"])


@pytest.mark.usefixtures("trio")
def test_agent_commands_posted_in_the_same_millisecond_are_newest_first(
    api: Api, client: FlaskClient
) -> None:
    sent = [_send(api, command_type=COMMAND_TYPES[n % 3])["commandId"] for n in range(8)]
    assert [item["commandId"] for item in _agent_commands(client)] == sent[::-1]


@pytest.fixture
def mixed(api: Api, runtime, clock, trio: None) -> dict[str, str]:
    """agent-1's deliveries in every status; names are the statuses, oldest is EXPIRED."""
    ids = {"EXPIRED": _send(api)["commandId"]}
    clock.advance(50)
    for status in ("ACKNOWLEDGED", "FAILED", "DELIVERED", "PENDING"):
        clock.advance(1)
        ids[status] = _send(api)["commandId"]
    clock.advance(10)  # the first command is now past its expiresAt; the others are not
    runtime.commands.expire()
    api.ack("agent-1", ids["ACKNOWLEDGED"])
    api.ack("agent-1", ids["FAILED"], status="failure")
    runtime.commands.mark_delivered("agent-1", [ids["DELIVERED"]])
    return ids


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (None, ["PENDING", "DELIVERED", "FAILED", "ACKNOWLEDGED", "EXPIRED"]),
        ("pending", ["PENDING"]),
        ("Delivered", ["DELIVERED"]),
        ("ACKNOWLEDGED", ["ACKNOWLEDGED"]),
        ("failed", ["FAILED"]),
        ("expired", ["EXPIRED"]),
        ("pending,DELIVERED", ["PENDING", "DELIVERED"]),
        ("expired,Acknowledged,FAILED", ["FAILED", "ACKNOWLEDGED", "EXPIRED"]),
        ("PENDING,pending", ["PENDING"]),
    ],
)
def test_agent_commands_filter_by_delivery_status(
    client: FlaskClient, mixed: dict[str, str], query: str | None, expected: list[str]
) -> None:
    listed = _agent_commands(client, **({"status": query} if query else {}))
    assert [(item["commandId"], item["status"]) for item in listed] == [
        (mixed[status], status) for status in expected
    ]


@pytest.mark.parametrize("status", ["bogus", "pending,bogus", "SUCCESS", "LIVE"])
@pytest.mark.usefixtures("trio")
def test_agent_commands_reject_an_unknown_status(client: FlaskClient, status: str) -> None:
    response = client.get("/api/v1/agents/agent-1/commands", query_string={"status": status})
    body = assert_error(response, 400, "VALIDATION_FAILED", {"status"})
    reasons = " ".join(body["errors"]["status"])
    assert all(valid in reasons for valid in DELIVERY_STATUSES), reasons


def test_agent_commands_of_an_unknown_agent_is_404(client: FlaskClient, trio: None) -> None:
    assert_error(client.get("/api/v1/agents/ghost/commands"), 404, "AGENT_NOT_FOUND")


@pytest.mark.usefixtures("trio")
def test_agent_without_commands_has_an_empty_list(api: Api, client: FlaskClient) -> None:
    _send(api, "agent-2/commands")
    assert _agent_commands(client) == []


# --- retention ----------------------------------------------------------------------------------

RETENTION = 10


@pytest.fixture
def retained(make_app):
    """An app keeping final commands for 10 s, with agent-1 and agent-2 in group-a."""
    app = make_app(command_retention_seconds=RETENTION)
    api = Api(app.test_client())
    for agent_id in ("agent-1", "agent-2"):
        assert api.register(agent_id).status_code == 201
    return api, app.extensions["agent_registry"]


def _assert_gone(api: Api, command_id: str) -> None:
    assert_error(api.client.get(f"/api/v1/commands/{command_id}"), 404, "COMMAND_NOT_FOUND")
    for agent_id in ("agent-1", "agent-2"):
        listed = _agent_commands(api.client, agent_id)
        assert command_id not in [item["commandId"] for item in listed]


def _assert_kept(api: Api, command_id: str) -> None:
    assert _command(api.client, command_id)["commandId"] == command_id
    listed = _agent_commands(api.client, "agent-1")
    assert command_id in [item["commandId"] for item in listed]


@pytest.mark.parametrize(
    ("finish", "final_at"),
    [
        pytest.param("ack", 5, id="acknowledged"),
        pytest.param("fail", 5, id="failed"),
        pytest.param("expire", 60, id="expired"),
    ],
)
def test_final_commands_are_dropped_after_retention(
    retained, clock, finish: str, final_at: float
) -> None:
    api, runtime = retained
    start = clock.now
    command_id = _send(api)["commandId"]
    other = _send(api, "agent-1/commands", "replay")["commandId"]
    clock.now = start + 5
    if finish == "ack":
        api.ack("agent-1", command_id)
    elif finish == "fail":
        api.ack("agent-1", command_id, status="FAILURE")
    else:
        clock.now = start + 60.5
        runtime.commands.expire()
    clock.now = start + final_at + RETENTION - 0.1
    runtime.commands.purge()
    _assert_kept(api, command_id)
    clock.now = start + final_at + RETENTION + 0.6
    runtime.commands.expire()
    runtime.commands.purge()
    _assert_gone(api, command_id)
    assert_error(api.ack("agent-1", command_id), 404, "COMMAND_NOT_FOUND")
    if finish != "expire":
        _assert_kept(api, other)


def test_a_command_is_kept_while_any_delivery_is_not_final(retained, clock) -> None:
    api, runtime = retained
    start = clock.now
    command_id = _send(api, "groups/group-a/commands")["commandId"]
    clock.now = start + 1
    api.ack("agent-1", command_id)
    clock.now = start + 50
    runtime.commands.purge()
    _assert_kept(api, command_id)
    assert [
        d["status"]
        for d in _command(api.client, command_id)["deliveries"]
        if d["agentId"] == "agent-2"
    ] == ["PENDING"]


def test_retention_counts_from_the_last_delivery_to_become_final(retained, clock) -> None:
    api, runtime = retained
    start = clock.now
    command_id = _send(api, "groups/group-a/commands")["commandId"]
    clock.now = start + 1
    api.ack("agent-1", command_id)
    clock.now = start + 8
    api.ack("agent-2", command_id, status="FAILURE")
    clock.now = start + 17.5
    runtime.commands.purge()
    _assert_kept(api, command_id)
    clock.now = start + 18.5
    runtime.commands.purge()
    _assert_gone(api, command_id)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_deliver_on_connect_must_be_a_json_boolean(api: Api, value: Any) -> None:
    api.register("agent-1")
    response = api.client.post(
        "/api/v1/agents/agent-1/commands", json={"type": "replay", "deliverOnConnect": value}
    )
    assert_error(response, 400, "VALIDATION_FAILED", ["deliverOnConnect"])
    assert api.client.get("/api/v1/agents/agent-1/commands").json == []

"""Hostile JSON bodies (API.md v1.1, "Hostile input"): each is a 400 VALIDATION_FAILED whose
message names the rule, and changes nothing. Regression tests carry the row of the fuzzing
campaign (issue "Hostile input and hard days") they pin."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient

from agent_registry.web.json_body import MAX_DEPTH
from harness.api_actions import Api

JSON = "application/json"
SEND = "/api/v1/agents/agent-1/commands"


def nested(depth: int) -> str:
    """A JSON value ``depth`` levels deep: ``{"a": {"a": ... 1}}``."""
    return '{"a": ' * depth + "1" + "}" * depth


def post(client: FlaskClient, path: str, body: str | bytes):
    return client.post(path, data=body, content_type=JSON)


def refused(answer, rule: str) -> None:
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.json["code"] == "VALIDATION_FAILED"
    assert rule in answer.json["message"]


@pytest.fixture
def agent(api: Api) -> Api:
    assert api.register("agent-1", "group-a").status_code == 201
    return api


def no_commands(client: FlaskClient) -> bool:
    return client.get(SEND).json == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"type": "replay", "payload": {"x": "\\ud83d"}}',
        b'{"type": "replay", "payload": {"x": "\xed\xa0\x80"}}',
        b'{"type": "replay", "payload": {"\\udfff": 1}}',
    ],
    ids=["escaped", "raw-bytes", "in-a-member-name"],
)
def test_row1_a_lone_surrogate_in_a_payload_is_400_and_creates_no_command(
    agent: Api, client: FlaskClient, body: bytes
) -> None:
    answer = post(client, SEND, body)

    assert answer.status_code == 400
    assert "surrogate" in answer.json["message"] or "UTF-8" in answer.json["message"]
    assert no_commands(client)


def test_row2_a_lone_surrogate_in_a_name_is_400_on_both_stores(client: FlaskClient) -> None:
    answer = post(
        client, "/api/v1/agents/register", '{"id": "a-1", "group": "g", "name": "\\udfff"}'
    )

    refused(answer, "lone surrogate")
    assert client.get("/api/v1/agents").json == []


@pytest.mark.parametrize("number", ["1e999", "-1e999", "NaN", "Infinity"])
def test_row4_a_number_that_is_not_finite_is_400_and_stores_nothing(
    agent: Api, client: FlaskClient, number: str
) -> None:
    sent = post(client, SEND, f'{{"type": "replay", "payload": {{"x": {number}}}}}')
    registered = post(
        client,
        "/api/v1/agents/register",
        f'{{"id": "a-2", "group": "g", "capabilities": {{"x": {number}}}}}',
    )

    assert sent.status_code == registered.status_code == 400
    assert no_commands(client)
    assert [agent["id"] for agent in client.get("/api/v1/agents").json] == ["agent-1"]


def test_row4_an_ack_whose_details_are_not_finite_is_400_and_changes_nothing(
    agent: Api, client: FlaskClient
) -> None:
    command_id = agent.send("agent-1/commands").json["commandId"]

    answer = post(
        client,
        f"/api/v1/agents/agent-1/commands/{command_id}/ack",
        '{"status": "SUCCESS", "details": {"x": 1e999}}',
    )

    refused(answer, "finite")
    assert client.get(SEND).json[0]["status"] == "PENDING"


def test_row5_capabilities_may_nest_to_the_limit_and_not_one_level_more(
    client: FlaskClient,
) -> None:
    at_limit = post(
        client,
        "/api/v1/agents/register",
        f'{{"id": "deep-1", "group": "g", "capabilities": {nested(MAX_DEPTH)}}}',
    )
    past_limit = post(
        client,
        "/api/v1/agents/register",
        f'{{"id": "deep-2", "group": "g", "capabilities": {nested(MAX_DEPTH + 1)}}}',
    )

    assert at_limit.status_code == 201
    refused(past_limit, f"deeper than {MAX_DEPTH} levels")
    listed = client.get("/api/v1/agents")
    assert listed.status_code == 200
    assert [agent["id"] for agent in listed.json] == ["deep-1"]


@pytest.mark.parametrize(
    "path",
    ["/api/v1/agents/register", SEND, "/api/v1/agents/agent-1/commands/c-1/ack"],
    ids=["register", "send", "ack-fast-path"],
)
def test_row5_a_body_nested_ten_thousand_deep_is_a_json_400(
    agent: Api, client: FlaskClient, path: str
) -> None:
    answer = post(client, path, "[" * 10_000 + "]" * 10_000)

    assert answer.mimetype == JSON
    refused(answer, "deeper than")


def test_row7_a_member_named_twice_is_400(agent: Api, client: FlaskClient) -> None:
    answer = post(client, SEND, '{"type": "replay", "type": "deep-trace"}')

    refused(answer, "'type' twice")
    assert no_commands(client)


def test_every_accepted_value_reads_back_as_json(agent: Api, client: FlaskClient) -> None:
    payload = {"text": "\U0001f600 caf\u00e9", "big": 12345678901234567890, "small": 1e-300}
    sent = client.post(SEND, json={"type": "replay", "payload": payload})

    assert sent.status_code == 202
    read = client.get(f"/api/v1/commands/{sent.json['commandId']}")
    assert json.loads(read.get_data(as_text=True))["payload"] == payload

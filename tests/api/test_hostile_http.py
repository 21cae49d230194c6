"""Hostile HTTP (API.md v1.1, "Hostile input"), as the app sees it: an encoded ``/`` in a
path segment and an invalid ``Host``. Each test is named after the row of the fuzzing
campaign (issue "Hostile input and hard days") it pins, on both stores and with the fast
views on and off. What the HTTP layer refuses before the app runs is in
tests/e2e/test_hostile_http_e2e.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from agent_registry import create_app
from harness.clock import FakeClock

Build = Callable[..., FlaskClient]


@pytest.fixture(params=["fast", "flask"])
def build(request, clock: FakeClock, store_url: str) -> Build:
    apps: list[Flask] = []

    def make(**config: str) -> FlaskClient:
        settings = {"AGENT_REGISTRY_STORE": store_url, **config}
        app = create_app(settings, clock=clock, fast_paths=request.param == "fast")
        app.testing = True
        apps.append(app)
        return app.test_client()

    return make


@pytest.fixture
def client(build: Build) -> FlaskClient:
    return build()


@pytest.fixture
def command_id(client: FlaskClient) -> str:
    """Agent ``A`` with one PENDING command (group ``g``, with agent ``B``)."""
    for agent_id in ("A", "B"):
        registered = client.post("/api/v1/agents/register", json={"id": agent_id, "group": "g"})
        assert registered.status_code == 201
    sent = client.post("/api/v1/agents/A/commands", json={"type": "replay"})
    assert sent.status_code == 202
    return str(sent.json["commandId"])


def not_found(answer) -> None:
    assert answer.status_code == 404, answer.get_data(as_text=True)
    assert answer.json["code"] == "NOT_FOUND"
    assert "%2F" in answer.json["message"]


@pytest.mark.parametrize("slash", ["%2F", "%2f"])
def test_row6_an_encoded_slash_in_an_id_does_not_reach_the_deliveries_route(
    client: FlaskClient, command_id: str, slash: str
) -> None:
    """``GET /agents/A%2Fcommands`` answered A's deliveries: %2F was decoded before routing."""
    not_found(client.get(f"/api/v1/agents/A{slash}commands"))


@pytest.mark.parametrize("slash", ["%2F", "%2f"])
def test_row6_an_encoded_slash_does_not_reach_the_ack_and_records_nothing(
    client: FlaskClient, command_id: str, slash: str
) -> None:
    """``POST /agents/A%2Fcommands%2FCID/ack`` recorded an ack (the fast path)."""
    not_found(client.post(f"/api/v1/agents/A{slash}commands{slash}{command_id}/ack"))
    delivery = client.get(f"/api/v1/commands/{command_id}").json["deliveries"][0]
    assert delivery["status"] == "PENDING"


def test_row6_an_encoded_slash_does_not_reach_the_heartbeat(
    client: FlaskClient, command_id: str, clock: FakeClock
) -> None:
    """``/agents%2FA/heartbeat`` decodes to A's heartbeat (the fast path)."""
    before = client.get("/api/v1/agents/A").json["lastHeartbeatAt"]
    clock.advance(5)
    not_found(client.post("/api/v1/agents%2FA/heartbeat"))
    assert client.get("/api/v1/agents/A").json["lastHeartbeatAt"] == before


def test_row6_an_encoded_slash_does_not_turn_a_send_to_one_into_a_send_to_a_group(
    client: FlaskClient, command_id: str
) -> None:
    """``/agents/groups%2Fg/commands`` decodes to the group send (a Flask route)."""
    not_found(client.post("/api/v1/agents/groups%2Fg/commands", json={"type": "replay"}))
    assert client.get("/api/v1/agents/B/commands").json == []


def test_row6_a_double_encoded_slash_is_an_id_like_any_other(
    client: FlaskClient, command_id: str
) -> None:
    """``%252F`` is a literal ``%2F`` in the id: no such agent, not a path separator."""
    answer = client.get("/api/v1/agents/A%252Fcommands")
    assert answer.status_code == 404
    assert answer.json["code"] == "AGENT_NOT_FOUND"


@pytest.mark.parametrize(
    "host", ["a b", "a,b", "", "host/path", "a@b", "x:port", "x:0", "x:65536", "my_svc"]
)
def test_row7_an_invalid_host_is_400_bad_request_and_registers_nothing(
    client: FlaskClient, host: str
) -> None:
    """``Host: a b`` answered 201 with ``"sseEndpoint": "http:///api/v1/..."``."""
    answer = client.post(
        "/api/v1/agents/register", json={"id": "A", "group": "g"}, headers={"Host": host}
    )
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.json["code"] == "BAD_REQUEST"
    assert "Host" in answer.json["message"]
    assert client.get("/api/v1/agents").json == []


def test_row7_an_invalid_host_is_refused_on_the_fast_path_too(
    client: FlaskClient, command_id: str
) -> None:
    answer = client.post("/api/v1/agents/A/heartbeat", headers={"Host": "a b"})
    assert answer.status_code == 400
    assert answer.json["code"] == "BAD_REQUEST"


@pytest.mark.parametrize(
    "host", ["localhost", "registry.example.com:8443", "10.0.0.7:8080", "[::1]:8080"]
)
def test_a_valid_host_builds_the_stream_url(client: FlaskClient, host: str) -> None:
    answer = client.post(
        "/api/v1/agents/register", json={"id": "A", "group": "g"}, headers={"Host": host}
    )
    assert answer.status_code == 201
    assert answer.json["sseEndpoint"] == f"http://{host}/api/v1/agents/A/events"


def test_row7_a_forwarded_host_from_a_trusted_proxy_is_checked_the_same(build: Build) -> None:
    client = build(AGENT_REGISTRY_TRUSTED_PROXIES="1")
    answer = client.post(
        "/api/v1/agents/register",
        json={"id": "A", "group": "g"},
        headers={"X-Forwarded-Host": "a b"},
    )
    assert answer.status_code == 400
    assert answer.json["code"] == "BAD_REQUEST"

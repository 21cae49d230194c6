"""API.md, Agents and Lifecycle: register, heartbeat, list, get one; state changes driven by
the fake clock and direct calls to the lifecycle sweep."""

from __future__ import annotations

import json
import logging
import random
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from agent_registry.errors import StoreUnavailable
from agent_registry.web import agents as agents_view
from agent_registry.web.json_array import AnswerCutShort
from harness.api_actions import Api
from tests.api import AGENT_KEYS, ISO_MS, TIMING_KEYS, assert_error, iso

DEFAULT_TIMING = {
    "heartbeatIntervalSeconds": 30,
    "staleAfterSeconds": 90,
    "deadAfterSeconds": 300,
    "commandExpirySeconds": 60,
    "keepaliveSeconds": 15,
}


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return [agent["id"] for agent in response.json]


# --- register ---------------------------------------------------------------------------


def test_register_new_agent_is_201_with_the_documented_body(api: Api) -> None:
    response = api.register("order-svc-7f9c", "order-service-prod")
    assert response.status_code == 201
    assert response.json == {
        "agentId": "order-svc-7f9c",
        "sseEndpoint": "http://localhost/api/v1/agents/order-svc-7f9c/events",
        "config": DEFAULT_TIMING,
        "serverPublicKey": None,
        "serverPublicKeys": None,
    }


def test_register_known_id_is_200_with_the_same_body(api: Api) -> None:
    first = api.register()
    again = api.register()
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json == first.json


@pytest.mark.parametrize(
    "timing",
    [
        pytest.param({}, id="defaults"),
        pytest.param(
            {
                "heartbeat_interval_seconds": 0.25,
                "stale_after_seconds": 1.5,
                "dead_after_seconds": 2.75,
                "command_expiry_seconds": 0.5,
                "keepalive_seconds": 0.2,
            },
            id="fractional",
        ),
        pytest.param(
            {
                "heartbeat_interval_seconds": 10,
                "stale_after_seconds": 40,
                "dead_after_seconds": 120,
                "command_expiry_seconds": 20,
                "keepalive_seconds": 5,
            },
            id="whole",
        ),
    ],
)
def test_register_returns_the_configured_timing(make_app, timing: dict[str, float]) -> None:
    api = Api(make_app(**timing).test_client())
    config = api.register().json["config"]
    assert set(config) == TIMING_KEYS
    expected = {
        **DEFAULT_TIMING,
        **{
            "heartbeatIntervalSeconds": timing.get("heartbeat_interval_seconds", 30),
            "staleAfterSeconds": timing.get("stale_after_seconds", 90),
            "deadAfterSeconds": timing.get("dead_after_seconds", 300),
            "commandExpirySeconds": timing.get("command_expiry_seconds", 60),
            "keepaliveSeconds": timing.get("keepalive_seconds", 15),
        },
    }
    assert config == expected
    assert all(
        isinstance(value, int | float) and not isinstance(value, bool) for value in config.values()
    )


def test_register_defaults_the_optional_fields(api: Api, clock) -> None:
    assert api.register("agent-1", "group-a").status_code == 201
    assert api.agent().json == {
        "id": "agent-1",
        "name": "agent-1",
        "group": "group-a",
        "version": None,
        "routeIds": [],
        "capabilities": {},
        "state": "LIVE",
        "registeredAt": "2026-03-11T10:15:30.000Z",
        "lastHeartbeatAt": "2026-03-11T10:15:30.000Z",
        "stateChangedAt": "2026-03-11T10:15:30.000Z",
        "connected": False,
    }


def test_register_keeps_every_field_given(api: Api) -> None:
    fields = {
        "name": "Order Service",
        "version": "3.2.1",
        "routeIds": ["route-a", "route-b"],
        "capabilities": {"deep-trace": True, "replay": True, "limits": {"max": [1, 2]}},
    }
    assert api.register("order-svc-7f9c", "order-service-prod", **fields).status_code == 201
    agent = api.agent("order-svc-7f9c").json
    assert {key: agent[key] for key in fields} == fields
    assert agent["group"] == "order-service-prod"


def test_reregister_keeps_registered_at_and_replaces_every_other_field(api: Api, clock) -> None:
    start = clock.now
    api.register(
        "agent-1",
        "group-a",
        name="Old",
        version="1.0",
        routeIds=["r1"],
        capabilities={"replay": True},
    )
    clock.advance(42.5)
    assert api.register("agent-1", "group-b").status_code == 200
    agent = api.agent().json
    assert agent["registeredAt"] == iso(start)
    assert agent["lastHeartbeatAt"] == iso(start + 42.5)
    assert {
        key: agent[key] for key in ("name", "group", "version", "routeIds", "capabilities")
    } == {
        "name": "agent-1",
        "group": "group-b",
        "version": None,
        "routeIds": [],
        "capabilities": {},
    }
    assert agent["state"] == "LIVE"


def test_reregister_may_change_the_group(api: Api, client: FlaskClient) -> None:
    api.register("agent-1", "group-a")
    api.register("agent-2", "group-a")
    api.register("agent-1", "group-b")
    assert _ids(client.get("/api/v1/agents?group=group-a")) == ["agent-2"]
    assert _ids(client.get("/api/v1/agents?group=group-b")) == ["agent-1"]


def test_reregister_restarts_the_heartbeat_clock(api: Api, runtime, clock) -> None:
    start = clock.now
    api.register()
    clock.now = start + 80
    api.register()
    clock.now = start + 169.999
    runtime.registry.sweep()
    assert api.agent().json["state"] == "LIVE"
    clock.now = start + 170
    runtime.registry.sweep()
    agent = api.agent().json
    assert (agent["state"], agent["stateChangedAt"]) == ("STALE", iso(start + 170))


def test_reregister_of_a_live_agent_does_not_move_state_changed_at(api: Api, clock) -> None:
    start = clock.now
    api.register()
    clock.advance(30)
    api.register()
    assert api.agent().json["stateChangedAt"] == iso(start)


@pytest.mark.parametrize(
    "agent_id", ["a", "Z", "7", "a" * 128, "order-svc-7f9c", "a.b_c:d-e", "0.0.0.0:8080", "A-"]
)
def test_valid_agent_ids_are_accepted_and_addressable(api: Api, agent_id: str) -> None:
    response = api.register(agent_id)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.json["agentId"] == agent_id
    assert (
        unquote(urlsplit(response.json["sseEndpoint"]).path) == f"/api/v1/agents/{agent_id}/events"
    )
    assert api.agent(agent_id).json["id"] == agent_id
    assert api.heartbeat(agent_id).status_code == 204


@pytest.mark.parametrize("group", ["g", "G9", "a" * 128, "order-service-prod", "eu:west.1_b"])
def test_valid_groups_are_accepted(api: Api, client: FlaskClient, group: str) -> None:
    assert api.register("agent-1", group).status_code == 201
    assert _ids(client.get("/api/v1/agents", query_string={"group": group})) == ["agent-1"]


INVALID_IDENTIFIERS = [
    "",
    "a" * 129,
    ".a",
    "_a",
    "-a",
    ":a",
    "a b",
    " a",
    "a/b",
    "a%2Fb",
    "a?b",
    "a#b",
    "a+b",
    "a@b",
    "a,b",
    "a\u00e4",
    "\u00e4a",
    "a\n",
    "a\t",
    "a\\b",
    7,
    None,
    True,
    ["a"],
    {"a": 1},
]


@pytest.mark.parametrize("field", ["id", "group"])
@pytest.mark.parametrize("value", INVALID_IDENTIFIERS, ids=repr)
def test_invalid_identifiers_are_rejected(
    api: Api, client: FlaskClient, field: str, value: Any
) -> None:
    document = {"id": "agent-1", "group": "group-a", field: value}
    response = client.post("/api/v1/agents/register", json=document)
    assert_error(response, 400, "VALIDATION_FAILED", {field})
    assert client.get("/api/v1/agents").json == []


@pytest.mark.parametrize("agent_id", ["register", "commands", "groups"])
def test_reserved_agent_ids_are_rejected(api: Api, client: FlaskClient, agent_id: str) -> None:
    assert_error(api.register(agent_id), 400, "VALIDATION_FAILED", {"id"})
    assert client.get("/api/v1/agents").json == []


def test_id_and_group_are_required(client: FlaskClient) -> None:
    response = client.post("/api/v1/agents/register", json={"name": "x"})
    assert_error(response, 400, "VALIDATION_FAILED", {"id", "group"})


@pytest.mark.parametrize(
    ("fields", "stored"),
    [
        pytest.param({"name": "n" * 256}, {"name": "n" * 256}, id="name-256"),
        pytest.param({"version": "v" * 64}, {"version": "v" * 64}, id="version-64"),
        pytest.param(
            {"routeIds": ["r" * 256, "b"]}, {"routeIds": ["r" * 256, "b"]}, id="route-id-256"
        ),
        pytest.param(
            {"routeIds": ["r"] * 10_000}, {"routeIds": ["r"] * 10_000}, id="10000-route-ids"
        ),
        pytest.param(
            {"capabilities": {"a": {"b": [1, None, "c"]}}},
            {"capabilities": {"a": {"b": [1, None, "c"]}}},
            id="nested-capabilities",
        ),
    ],
)
def test_field_limits_are_inclusive(
    api: Api, fields: dict[str, Any], stored: dict[str, Any]
) -> None:
    assert api.register(**fields).status_code == 201
    agent = api.agent().json
    assert {key: agent[key] for key in stored} == stored


@pytest.mark.parametrize(
    ("fields", "wrong"),
    [
        pytest.param({"name": "n" * 257}, {"name"}, id="name-257"),
        pytest.param({"name": 5}, {"name"}, id="name-not-string"),
        pytest.param({"version": "v" * 65}, {"version"}, id="version-65"),
        pytest.param({"version": 3.2}, {"version"}, id="version-not-string"),
        pytest.param({"routeIds": ["r"] * 10_001}, {"routeIds"}, id="10001-route-ids"),
        pytest.param({"routeIds": ["a", "b", "c", "r" * 257]}, {"routeIds.3"}, id="route-id-257"),
        pytest.param(
            {"routeIds": ["a", 1, "c", None]},
            {"routeIds.1", "routeIds.3"},
            id="route-ids-not-strings",
        ),
        pytest.param({"routeIds": "route-a"}, {"routeIds"}, id="route-ids-string"),
        pytest.param({"routeIds": {"a": 1}}, {"routeIds"}, id="route-ids-object"),
        pytest.param({"capabilities": []}, {"capabilities"}, id="capabilities-array"),
        pytest.param({"capabilities": "replay"}, {"capabilities"}, id="capabilities-string"),
        pytest.param({"capabilities": 1}, {"capabilities"}, id="capabilities-number"),
        pytest.param({"capabilities": None}, {"capabilities"}, id="capabilities-null"),
    ],
)
def test_field_rules_are_enforced(
    api: Api, client: FlaskClient, fields: dict[str, Any], wrong: set[str]
) -> None:
    assert_error(api.register(**fields), 400, "VALIDATION_FAILED", wrong)
    assert client.get("/api/v1/agents").json == []


# --- sseEndpoint and forwarded headers ---------------------------------------------------

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "registry.example.com"}


@pytest.mark.parametrize(
    ("trusted", "headers", "expected"),
    [
        pytest.param(0, FORWARDED, "http://localhost", id="untrusted-by-default"),
        pytest.param(
            0,
            {**FORWARDED, "X-Forwarded-Port": "8443", "X-Forwarded-Prefix": "/x"},
            "http://localhost",
            id="untrusted-all-headers",
        ),
        pytest.param(1, {}, "http://localhost", id="trusted-no-headers"),
        pytest.param(1, FORWARDED, "https://registry.example.com", id="trusted-one-hop"),
        pytest.param(
            1,
            {
                "X-Forwarded-Proto": "http, https",
                "X-Forwarded-Host": "evil.example, registry.example.com",
            },
            "https://registry.example.com",
            id="trusts-only-the-last-hop",
        ),
    ],
)
def test_sse_endpoint_honours_forwarded_headers_only_from_trusted_proxies(
    make_app, trusted: int, headers: dict[str, str], expected: str
) -> None:
    config = {"trusted_proxies": trusted} if trusted else {}
    client = make_app(**config).test_client()
    response = client.post(
        "/api/v1/agents/register", json={"id": "agent-1", "group": "group-a"}, headers=headers
    )
    assert response.status_code == 201
    assert response.json["sseEndpoint"] == f"{expected}/api/v1/agents/agent-1/events"


# --- heartbeat -----------------------------------------------------------------------------


def test_heartbeat_is_204_and_moves_last_heartbeat_only(api: Api, clock) -> None:
    start = clock.now
    api.register()
    clock.advance(12.345)
    response = api.heartbeat()
    assert response.status_code == 204
    assert response.get_data() == b""
    agent = api.agent().json
    assert agent["lastHeartbeatAt"] == iso(start + 12.345) == "2026-03-11T10:15:42.345Z"
    assert (agent["state"], agent["stateChangedAt"], agent["registeredAt"]) == (
        "LIVE",
        iso(start),
        iso(start),
    )


def test_heartbeat_of_an_unknown_agent_says_to_register_again(api: Api) -> None:
    body = assert_error(api.heartbeat("ghost"), 404, "AGENT_NOT_REGISTERED")
    assert "register" in body["message"].lower()
    assert api.agent("ghost").status_code == 404


def test_heartbeat_pushes_the_stale_deadline(api: Api, runtime, clock) -> None:
    start = clock.now
    api.register()
    clock.now = start + 60
    api.heartbeat()
    clock.now = start + 149.5
    runtime.registry.sweep()
    assert api.agent().json["state"] == "LIVE"
    clock.now = start + 150
    runtime.registry.sweep()
    assert api.agent().json["state"] == "STALE"
    assert api.agent().json["stateChangedAt"] == iso(start + 150)


# --- lifecycle ------------------------------------------------------------------------------


def test_live_goes_stale_at_its_deadline_and_not_before(api: Api, runtime, clock) -> None:
    start = clock.now
    api.register()
    clock.now = start + 89.9
    runtime.registry.sweep()
    assert api.agent().json["state"] == "LIVE"
    clock.now = start + 90
    runtime.registry.sweep()
    agent = api.agent().json
    assert (agent["state"], agent["stateChangedAt"]) == ("STALE", iso(start + 90))
    assert agent["lastHeartbeatAt"] == iso(start)


def test_stale_goes_dead_after_dead_after_seconds(api: Api, runtime, clock) -> None:
    start = clock.now
    api.register()
    clock.now = start + 90
    runtime.registry.sweep()
    clock.now = start + 389.9
    runtime.registry.sweep()
    assert api.agent().json["state"] == "STALE"
    clock.now = start + 390
    runtime.registry.sweep()
    agent = api.agent().json
    assert (agent["state"], agent["stateChangedAt"]) == ("DEAD", iso(start + 390))


def test_state_changed_at_is_the_deadline_not_the_sweep_time(api: Api, runtime, clock) -> None:
    start = clock.now
    api.register()
    clock.now = start + 200  # the sweep runs late
    runtime.registry.sweep()
    agent = api.agent().json
    assert (agent["state"], agent["stateChangedAt"]) == ("STALE", iso(start + 90))


def test_a_long_pause_goes_through_stale_to_dead(api: Api, runtime, clock) -> None:
    start = clock.now
    api.register()
    clock.now = start + 5000
    runtime.registry.sweep()
    agent = api.agent().json
    assert (agent["state"], agent["stateChangedAt"]) == ("DEAD", iso(start + 390))


def test_each_transition_happens_once(api: Api, runtime, clock) -> None:
    start = clock.now
    api.register()
    clock.now = start + 100
    runtime.registry.sweep()
    first = api.agent().json
    clock.now = start + 101
    runtime.registry.sweep()
    runtime.registry.sweep()
    assert api.agent().json == first
    clock.now = start + 400
    runtime.registry.sweep()
    dead = api.agent().json
    clock.now = start + 900
    runtime.registry.sweep()
    assert api.agent().json == dead
    assert dead["stateChangedAt"] == iso(start + 390)


def test_dead_agents_are_kept_and_listed(api: Api, client: FlaskClient, runtime, clock) -> None:
    api.register()
    for _ in range(3):
        clock.advance(30 * 24 * 3600)
        runtime.registry.sweep()
        runtime.commands.expire()
        runtime.commands.purge()
    assert api.agent().json["state"] == "DEAD"
    assert _ids(client.get("/api/v1/agents")) == ["agent-1"]
    assert _ids(client.get("/api/v1/agents?status=DEAD")) == ["agent-1"]


@pytest.mark.parametrize(("pause", "state"), [(100, "STALE"), (400, "DEAD")])
@pytest.mark.parametrize("revive", ["heartbeat", "register"])
def test_heartbeat_or_registration_makes_a_stale_or_dead_agent_live(
    api: Api, runtime, clock, pause: float, state: str, revive: str
) -> None:
    start = clock.now
    api.register()
    clock.now = start + pause
    runtime.registry.sweep()
    assert api.agent().json["state"] == state
    clock.now = start + pause + 7
    response = api.heartbeat() if revive == "heartbeat" else api.register()
    assert response.status_code == (204 if revive == "heartbeat" else 200)
    agent = api.agent().json
    revived_at = iso(start + pause + 7)
    assert (agent["state"], agent["stateChangedAt"], agent["lastHeartbeatAt"]) == (
        "LIVE",
        revived_at,
        revived_at,
    )
    assert agent["registeredAt"] == iso(start)
    # the heartbeat clock restarts from the revival
    clock.now = start + pause + 7 + 89.5
    runtime.registry.sweep()
    assert api.agent().json["state"] == "LIVE"
    clock.now = start + pause + 7 + 90
    runtime.registry.sweep()
    assert api.agent().json["state"] == "STALE"


def test_fractional_lifecycle_settings_are_honoured(make_app, clock) -> None:
    app = make_app(stale_after_seconds=0.5, dead_after_seconds=1.25)
    api, registry = Api(app.test_client()), app.extensions["agent_registry"].registry
    start = clock.now
    api.register()
    clock.now = start + 0.4
    registry.sweep()
    assert api.agent().json["state"] == "LIVE"
    clock.now = start + 0.5
    registry.sweep()
    assert (api.agent().json["state"], api.agent().json["stateChangedAt"]) == (
        "STALE",
        "2026-03-11T10:15:30.500Z",
    )
    clock.now = start + 1.75
    registry.sweep()
    assert (api.agent().json["state"], api.agent().json["stateChangedAt"]) == (
        "DEAD",
        "2026-03-11T10:15:31.750Z",
    )


# --- list -------------------------------------------------------------------------------------


def test_list_is_ordered_by_code_point(api: Api, client: FlaskClient) -> None:
    ids = ["b", "a", "B", "Z", "0", "9", "a.b", "a-b", "a:b", "a_b", "aa", "A", "a0"]
    random.Random(7).shuffle(ids)
    for agent_id in ids:
        assert api.register(agent_id).status_code == 201
    listed = _ids(client.get("/api/v1/agents"))
    assert listed == sorted(ids)
    assert listed.index("B") < listed.index("a") < listed.index("b")


def test_list_items_are_agents(api: Api, client: FlaskClient) -> None:
    api.register(
        "agent-1", "group-a", name="One", version="1", routeIds=["r"], capabilities={"replay": True}
    )
    (item,) = client.get("/api/v1/agents").json
    assert set(item) == AGENT_KEYS
    assert item == api.agent().json
    assert item["connected"] is False


@pytest.fixture
def fleet(api: Api, runtime, clock) -> None:
    """dead-1 DEAD, stale-1 STALE, live-1 and live-2 LIVE."""
    start = clock.now
    api.register("dead-1")
    clock.now = start + 300
    api.register("stale-1")
    clock.now = start + 395
    api.register("live-1")
    api.register("live-2", "group-b")
    runtime.registry.sweep()
    states = {
        agent_id: api.agent(agent_id).json["state"]
        for agent_id in ("dead-1", "stale-1", "live-1", "live-2")
    }
    assert states == {"dead-1": "DEAD", "stale-1": "STALE", "live-1": "LIVE", "live-2": "LIVE"}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("LIVE", ["live-1", "live-2"]),
        ("live", ["live-1", "live-2"]),
        ("Stale", ["stale-1"]),
        ("dead", ["dead-1"]),
        ("LIVE,DEAD", ["dead-1", "live-1", "live-2"]),
        ("dead,Live", ["dead-1", "live-1", "live-2"]),
        ("live,stale,dead", ["dead-1", "live-1", "live-2", "stale-1"]),
        ("STALE,stale", ["stale-1"]),
    ],
)
@pytest.mark.usefixtures("fleet")
def test_list_filters_by_status(client: FlaskClient, status: str, expected: list[str]) -> None:
    assert _ids(client.get("/api/v1/agents", query_string={"status": status})) == expected


@pytest.mark.usefixtures("fleet")
def test_list_without_filters_includes_every_state(client: FlaskClient) -> None:
    assert _ids(client.get("/api/v1/agents")) == ["dead-1", "live-1", "live-2", "stale-1"]


@pytest.mark.parametrize("status", ["zombie", "LIVE,zombie", "ALIVE", "PENDING"])
def test_list_rejects_an_unknown_status_listing_the_valid_ones(
    client: FlaskClient, status: str
) -> None:
    body = assert_error(
        client.get("/api/v1/agents", query_string={"status": status}),
        400,
        "VALIDATION_FAILED",
        {"status"},
    )
    reasons = " ".join(body["errors"]["status"])
    assert all(name in reasons for name in ("LIVE", "STALE", "DEAD"))


@pytest.mark.usefixtures("fleet")
def test_list_filters_by_group(client: FlaskClient) -> None:
    assert _ids(client.get("/api/v1/agents?group=group-a")) == ["dead-1", "live-1", "stale-1"]
    assert _ids(client.get("/api/v1/agents?group=group-b")) == ["live-2"]
    assert _ids(client.get("/api/v1/agents?group=nobody")) == []
    assert _ids(client.get("/api/v1/agents?group=group-a&status=live,stale")) == [
        "live-1",
        "stale-1",
    ]


@pytest.mark.usefixtures("fleet")
def test_list_limit_and_after(client: FlaskClient) -> None:
    assert _ids(client.get("/api/v1/agents?limit=2")) == ["dead-1", "live-1"]
    assert _ids(client.get("/api/v1/agents?limit=1")) == ["dead-1"]
    assert _ids(client.get("/api/v1/agents?limit=10000")) == [
        "dead-1",
        "live-1",
        "live-2",
        "stale-1",
    ]
    assert _ids(client.get("/api/v1/agents?after=live-1")) == ["live-2", "stale-1"]
    assert _ids(client.get("/api/v1/agents?after=live")) == ["live-1", "live-2", "stale-1"]
    assert _ids(client.get("/api/v1/agents?after=stale-1")) == []
    assert _ids(client.get("/api/v1/agents?after=dead-1&limit=2")) == ["live-1", "live-2"]
    assert _ids(client.get("/api/v1/agents?after=dead-1&status=live&limit=1")) == ["live-1"]
    assert _ids(client.get("/api/v1/agents?after=dead-1&group=group-a")) == ["live-1", "stale-1"]


def test_keyset_paging_visits_every_agent_once(api: Api, client: FlaskClient) -> None:
    ids = [*sorted(f"agent-{n:02d}" for n in range(23)), "B", "a", "b"]
    for agent_id in ids:
        api.register(agent_id)
    seen: list[str] = []
    after: str | None = None
    for _ in range(len(ids) // 5 + 2):  # bounded: a paging bug must fail, not hang
        query: dict[str, Any] = {"limit": 5, **({"after": after} if after else {})}
        page = _ids(client.get("/api/v1/agents", query_string=query))
        assert len(page) <= 5
        if not page:
            break
        seen += page
        after = page[-1]
    assert seen == sorted(ids)


@pytest.mark.parametrize("limit", ["0", "10001", "-1", "abc", "1.5", "", "1e3"])
def test_list_rejects_a_limit_outside_1_to_10000(client: FlaskClient, limit: str) -> None:
    assert_error(
        client.get("/api/v1/agents", query_string={"limit": limit}),
        400,
        "VALIDATION_FAILED",
        {"limit"},
    )


def test_list_rejects_several_wrong_parameters_at_once(client: FlaskClient) -> None:
    response = client.get("/api/v1/agents?limit=0&status=zombie&colour=red")
    assert_error(response, 400, "VALIDATION_FAILED", {"limit", "status", "colour"})


# --- get one ----------------------------------------------------------------------------------


def test_get_one_returns_the_agent(api: Api) -> None:
    api.register(
        "order-svc-7f9c",
        "order-service-prod",
        name="Order Service",
        version="3.2.1",
        routeIds=["route-a"],
        capabilities={"deep-trace": True},
    )
    response = api.agent("order-svc-7f9c")
    assert response.status_code == 200
    agent = response.json
    assert set(agent) == AGENT_KEYS
    assert {
        key: agent[key]
        for key in AGENT_KEYS - {"registeredAt", "lastHeartbeatAt", "stateChangedAt"}
    } == {
        "id": "order-svc-7f9c",
        "name": "Order Service",
        "group": "order-service-prod",
        "version": "3.2.1",
        "routeIds": ["route-a"],
        "capabilities": {"deep-trace": True},
        "state": "LIVE",
        "connected": False,
    }


@pytest.mark.parametrize("agent_id", ["ghost", "register", "commands", "groups"])
def test_get_unknown_agent_is_404(api: Api, agent_id: str) -> None:
    api.register()
    assert_error(api.agent(agent_id), 404, "AGENT_NOT_FOUND")


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (0, "2026-03-11T10:15:30.000Z"),
        (0.123, "2026-03-11T10:15:30.123Z"),
        (0.5, "2026-03-11T10:15:30.500Z"),
        (3600 * 14 + 0.007, "2026-03-12T00:15:30.007Z"),
    ],
)
def test_timestamps_are_utc_with_milliseconds(
    api: Api, clock, offset: float, expected: str
) -> None:
    clock.advance(offset)
    api.register()
    agent = api.agent().json
    for key in ("registeredAt", "lastHeartbeatAt", "stateChangedAt"):
        assert ISO_MS.match(agent[key]), agent[key]
        assert agent[key] == expected


# --- big lists (issue 15, row 8) -----------------------------------------------------------


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> int:
    """Lists longer than 2 agents are streamed, as 100 000 would be with the real page."""
    monkeypatch.setattr(agents_view, "LIST_PAGE", 2)
    return 2


BIG_LIST_QUERIES = [
    "",
    "?status=live",
    "?status=dead,stale",
    "?group=group-a",
    "?group=group-a&status=live,stale",
    "?limit=3",
    "?after=b-1",
    "?after=b-1&limit=4&status=live",
    "?group=nobody",
]


@pytest.mark.usefixtures("fleet")
def test_a_streamed_list_is_byte_for_byte_the_list_built_at_once(
    api: Api, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(5):
        api.register(f"b-{n}", "group-a", capabilities={"ü": "\u2028 \U0001f600"})
    built = {query: client.get("/api/v1/agents" + query) for query in BIG_LIST_QUERIES}
    monkeypatch.setattr(agents_view, "LIST_PAGE", 2)
    for query, expected in built.items():
        streamed = client.get("/api/v1/agents" + query)
        assert streamed.status_code == 200
        assert streamed.headers["Content-Type"] == "application/json"
        assert streamed.data == expected.data, query
        assert streamed.data.endswith(b"]\n")
        if len(expected.json) >= 2:  # a page or more: written in chunks, no length
            assert "Content-Length" not in streamed.headers, query
        else:
            assert streamed.headers["Content-Length"] == str(len(expected.data)), query


@pytest.mark.usefixtures("small_pages")
def test_a_store_failure_on_the_first_page_is_still_a_503(
    api: Api, client: FlaskClient, runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(5):
        api.register(f"agent-{n}")
    monkeypatch.setattr(runtime.presence, "connected", _unavailable)
    assert_error(client.get("/api/v1/agents"), 503, "STORE_UNAVAILABLE")


@pytest.mark.usefixtures("small_pages")
def test_a_store_failure_after_the_first_chunk_ends_the_answer_unfinished(
    api: Api,
    app: Flask,
    runtime,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The status is sent with the first chunk: a later page that cannot be read must not
    end the array as if it were whole. The answer ends unfinished (the server closes the
    connection), after one WARNING line."""
    for n in range(7):
        api.register(f"agent-{n}")
    connected = runtime.presence.connected
    calls = 0

    def second_page_fails(agent_ids):
        nonlocal calls
        calls += 1
        if calls == 3:
            _unavailable(agent_ids)
        return connected(agent_ids)

    monkeypatch.setattr(runtime.presence, "connected", second_page_fails)
    # A plain client: the contract client reads every body whole, which this one is not.
    response = FlaskClient(app).get("/api/v1/agents", buffered=False)
    assert response.status_code == 200
    chunks: list[bytes] = []
    with pytest.raises(AnswerCutShort):
        for chunk in response.response:
            chunks.append(chunk)
    body = b"".join(chunks)
    assert body.startswith(b"[") and not body.endswith(b"]\n")
    assert [a["id"] for a in json.loads(body + b"]")] == [f"agent-{n}" for n in range(4)]
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "cut short after 4 items" in warning.getMessage()
    response.close()


def _unavailable(agent_ids: object) -> set[str]:
    raise StoreUnavailable("The shared store (Redis) is unavailable; retry shortly.")

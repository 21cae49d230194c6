"""Operations endpoints (API.md v1.1): /healthz, /readyz and GET /api/v1/server, on both
stores. Every answer is checked against the OpenAPI document (tests/api/conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from agent_registry.server.runtime import Runtime
from harness.sockets import HOST, listening_socket, unused_port

from . import TIMING_KEYS, assert_error

# Nothing listens there: connections are refused (Redis stopped).
REFUSED = f"redis://{HOST}:{unused_port()}/0"


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A Redis URL whose port accepts connections and never answers (Redis paused)."""
    sock = listening_socket()
    yield f"redis://{HOST}:{sock.getsockname()[1]}/0"
    sock.close()


# /healthz -----------------------------------------------------------------------------------


def test_healthz_answers_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}
    assert "X-Protocol-Version" not in response.headers


def test_healthz_and_readyz_need_no_protocol_version(client):
    """Outside /api/v1/agents, X-Protocol-Version is not checked (even a wrong one)."""
    for path in ("/healthz", "/readyz"):
        assert client.get(path, headers={"X-Protocol-Version": "7"}).status_code == 200


def test_healthz_answers_while_the_worker_drains(client, runtime: Runtime):
    runtime.stop()
    assert client.get("/healthz").json == {"status": "ok"}


# /readyz ------------------------------------------------------------------------------------


def test_readyz_is_ready_when_the_store_answers(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {
        "status": "ready",
        "checks": {"store": "ok", "bus": "ok", "shutdown": "ok"},
    }


def test_readyz_is_unready_naming_shutdown_once_the_worker_stops(client, runtime: Runtime):
    runtime.stop()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json == {
        "status": "unready",
        "checks": {"store": "ok", "bus": "ok", "shutdown": "draining"},
    }


def test_stop_turns_unready_before_it_ends_the_streams(runtime: Runtime, monkeypatch):
    """A load balancer must see the worker unready before its agents start reconnecting."""
    seen: list[str] = []
    end_all = runtime.hub.end_all

    def spy() -> None:
        seen.append(runtime.readiness()["shutdown"])
        end_all()

    monkeypatch.setattr(runtime.hub, "end_all", spy)
    runtime.stop()
    runtime.stop()  # idempotent (worker_exit calls it again)
    assert seen == ["draining"]


@pytest.mark.redis
@pytest.mark.parametrize("store_url", [REFUSED], ids=["refused"])
def test_readyz_is_unready_naming_the_store_when_redis_refuses(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json == {
        "status": "unready",
        "checks": {"store": "unavailable", "bus": "ok", "shutdown": "ok"},
    }


@pytest.mark.redis
@pytest.mark.parametrize("store_url", ["redis"], indirect=True)
def test_readyz_answers_within_a_second_when_redis_does_not_answer(make_app, black_hole):
    """A paused Redis accepts connections and never replies: the PING is bounded."""
    client = make_app(store=black_hole).test_client()
    started = time.monotonic()
    response = client.get("/readyz")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.json["checks"] == {"store": "unavailable", "bus": "ok", "shutdown": "ok"}
    assert elapsed < 1.5, elapsed


@pytest.mark.redis
@pytest.mark.parametrize("store_url", ["redis"], indirect=True)
def test_readyz_does_not_wait_for_the_shared_pool(app):
    """Every connection of the shared pool busy (stuck requests) does not delay the probe."""
    shared = app.extensions["agent_registry"].registry.store._redis.connection_pool
    taken = [shared.get_connection() for _ in range(shared.max_connections)]
    try:
        started = time.monotonic()
        response = app.test_client().get("/readyz")
        assert response.status_code == 200
        assert time.monotonic() - started < 1.0
    finally:
        for connection in taken:
            shared.release(connection)


class Unsubscribed:
    """A relay whose subscriber is down."""

    def relays(self) -> bool:
        return False


def test_readyz_is_unready_naming_the_bus_while_the_subscriber_is_not_subscribed(
    client, runtime: Runtime, monkeypatch
):
    """The bus check (issue 15, row 3); tests/e2e/test_redis_e2e.py makes a real subscriber
    fail and recover, and tests/redis/test_bus.py says when a RedisBus relays."""
    monkeypatch.setattr(runtime, "relay", Unsubscribed())
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json == {
        "status": "unready",
        "checks": {"store": "ok", "bus": "unsubscribed", "shutdown": "ok"},
    }


def test_readyz_and_healthz_are_in_the_openapi_document(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    assert set(paths["/readyz"]["get"]["responses"]) == {"200", "503", "default"}
    assert "200" in paths["/healthz"]["get"]["responses"]
    assert "200" in paths["/api/v1/server"]["get"]["responses"]


# GET /api/v1/server -------------------------------------------------------------------------


def fleet(client) -> dict[str, int]:
    response = client.get("/api/v1/server")
    assert response.status_code == 200, response.json
    return response.json["fleet"]


def test_server_describes_itself_and_its_registration_config(make_app, store_url):
    client = make_app(stale_after_seconds=12.5).test_client()
    body = client.get("/api/v1/server").json
    assert set(body) == {"version", "store", "auth", "signing", "config", "fleet"}
    assert isinstance(body["version"], str) and body["version"]
    assert body["store"] == ("memory" if store_url == "memory" else "redis")
    assert body["auth"] == "off"
    assert body["signing"] is None
    assert set(body["config"]) == TIMING_KEYS
    registered = client.post("/api/v1/agents/register", json={"id": "a1", "group": "g"})
    assert body["config"] == registered.json["config"]
    assert body["config"]["staleAfterSeconds"] == 12.5
    assert body["fleet"] == {"LIVE": 0, "STALE": 0, "DEAD": 0, "connected": 0}


def test_server_fleet_counts_follow_registrations_sweeps_and_heartbeats(
    api, client, clock, runtime
):
    for agent_id in ("a1", "a2", "a3"):
        api.register(agent_id)
    assert fleet(client) == {"LIVE": 3, "STALE": 0, "DEAD": 0, "connected": 0}
    clock.advance(60)
    api.heartbeat("a3")
    clock.advance(30)  # a1 and a2 reach staleAfterSeconds (90); a3 heartbeated at 60
    runtime.registry.sweep()
    assert fleet(client) == {"LIVE": 1, "STALE": 2, "DEAD": 0, "connected": 0}
    clock.advance(300)  # a1, a2 DEAD; a3 STALE
    runtime.registry.sweep()
    assert fleet(client) == {"LIVE": 0, "STALE": 1, "DEAD": 2, "connected": 0}
    api.heartbeat("a1")  # a DEAD agent's heartbeat revives it
    api.register("a2")  # so does registering again
    api.heartbeat("a3")
    assert fleet(client) == {"LIVE": 3, "STALE": 0, "DEAD": 0, "connected": 0}


def test_server_counts_agents_with_an_open_stream(api, client, runtime):
    api.register("a1")
    api.register("a2")
    first = runtime.hub.open("a1")
    replacement = runtime.hub.open("a1")
    try:
        assert fleet(client)["connected"] == 1
        second = runtime.hub.open("a2")
        assert fleet(client)["connected"] == 2
        runtime.hub.close(second)
        runtime.hub.close(first)  # the replaced stream's cleanup: a1 stays connected
        assert fleet(client)["connected"] == 1
    finally:
        runtime.hub.close(replacement)
    assert fleet(client)["connected"] == 0


@pytest.mark.redis
@pytest.mark.parametrize("store_url", [REFUSED], ids=["refused"])
def test_server_answers_503_when_redis_is_unavailable(client):
    assert_error(client.get("/api/v1/server"), 503, "STORE_UNAVAILABLE")

"""The lifecycle through a real gunicorn + gevent server with fractional thresholds."""

from __future__ import annotations

import time

import httpx
import pytest

from harness.gunicorn import FAST_LIFECYCLE

pytestmark = pytest.mark.e2e


def wait_for_state(client: httpx.Client, agent_id: str, state: str, within: float) -> dict:
    deadline = time.monotonic() + within
    while True:
        agent = client.get(f"/api/v1/agents/{agent_id}").json()
        if agent["state"] == state or time.monotonic() > deadline:
            return agent
        time.sleep(0.02)


def test_agent_goes_stale_then_dead_and_heartbeat_revives_it(start_server):
    server = start_server(FAST_LIFECYCLE)
    with httpx.Client(base_url=server.url, timeout=5) as client:
        registered = client.post("/api/v1/agents/register", json={"id": "e2e-1", "group": "g"})
        assert registered.status_code == 201

        stale = wait_for_state(client, "e2e-1", "STALE", within=3)
        assert stale["state"] == "STALE"
        dead = wait_for_state(client, "e2e-1", "DEAD", within=3)
        assert dead["state"] == "DEAD"
        listed = client.get("/api/v1/agents", params={"status": "dead"}).json()
        assert [agent["id"] for agent in listed] == ["e2e-1"]

        assert client.post("/api/v1/agents/e2e-1/heartbeat").status_code == 204
        assert client.get("/api/v1/agents/e2e-1").json()["state"] == "LIVE"

"""AGENT_REGISTRY_LOG_FORMAT=json with the access log on, through a real gunicorn server:
every line the master and the worker write, gunicorn's own included, is one JSON object.

This test is about the log format itself, so reading the log is its subject.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from harness.gunicorn import GunicornServer
from tests.e2e.sse_client import StreamListener

pytestmark = pytest.mark.e2e

REQUIRED = {"time", "level", "logger", "message"}


def log_lines(server: GunicornServer) -> list[str]:
    """What the server wrote, without the marker line the harness writes at each start."""
    return [
        line
        for line in server.log_since_start().splitlines()
        if line.strip() and not line.startswith("===== start ")
    ]


def test_every_line_is_a_json_object_and_access_lines_carry_route_status_and_ids(tmp_path):
    server = GunicornServer(
        log_dir=tmp_path,
        env={
            "AGENT_REGISTRY_LOG_FORMAT": "json",
            "AGENT_REGISTRY_ACCESS_LOG": "on",
            "AGENT_REGISTRY_LOG_LEVEL": "debug",
            "AGENT_REGISTRY_KEEPALIVE_SECONDS": "0.2",
        },
    ).start()
    try:
        with httpx.Client(base_url=server.url, timeout=5) as http:
            registered = http.post("/api/v1/agents/register", json={"id": "log-1", "group": "g"})
            assert registered.status_code == 201
            with StreamListener(server.url, "log-1") as stream:
                assert http.post("/api/v1/agents/log-1/heartbeat").status_code == 204
                sent = http.post("/api/v1/agents/log-1/commands", json={"type": "deep-trace"})
                command_id = sent.json()["commandId"]
                assert stream.next_command()["id"] == command_id
                ack = http.post(
                    f"/api/v1/agents/log-1/commands/{command_id}/ack", json={"status": "SUCCESS"}
                )
                assert ack.status_code == 200
            assert http.get("/api/v1/agents/nobody").status_code == 404
            assert http.get("/no/such/url").status_code == 404
    finally:
        server.stop()

    records: list[dict[str, Any]] = []
    for line in log_lines(server):
        record = json.loads(line)  # a line that is not JSON fails here, and names itself
        assert isinstance(record, dict), line
        assert record.keys() >= REQUIRED, line
        records.append(record)

    loggers = {record["logger"] for record in records}
    assert {"gunicorn.error", "agent_registry.access", "agent_registry.core.registry"} <= loggers
    assert "gunicorn.access" not in loggers  # one access log, ours: not gunicorn's as well
    assert len({record["process"] for record in records}) >= 2  # the master and the worker

    access = {
        (r["method"], r["route"], r["status"]): r
        for r in records
        if r["logger"] == "agent_registry.access"
    }
    heartbeat = access["POST", "/api/v1/agents/<agent_id>/heartbeat", 204]
    assert heartbeat["agent_id"] == "log-1"
    assert isinstance(heartbeat["duration_ms"], float | int)
    acked = access["POST", "/api/v1/agents/<agent_id>/commands/<command_id>/ack", 200]
    assert (acked["agent_id"], acked["command_id"]) == ("log-1", command_id)
    assert access["GET", "/api/v1/agents/<agent_id>", 404]["agent_id"] == "nobody"
    assert ("GET", "/no/such/url", 404) in access

    events = [r for r in records if r["logger"].startswith("agent_registry.core")]
    assert any(r.get("agent_id") == "log-1" and "command_id" not in r for r in events)
    assert any(r.get("command_id") == command_id for r in events)

"""The floor app answers each hot path the way the load generator expects of the real one."""

from __future__ import annotations

from bench.floor_app import create_app


def test_the_floor_acknowledges_as_the_real_server_does_with_or_without_a_body():
    client = create_app().test_client()

    failed = client.post(
        "/api/v1/agents/a1/commands/c1/ack", json={"status": "FAILURE", "message": "no"}
    )
    bare = client.post("/api/v1/agents/a2/commands/c1/ack")

    assert (failed.status_code, failed.get_json()["status"]) == (200, "FAILURE")
    assert (bare.status_code, bare.get_json()["status"]) == (200, "SUCCESS")

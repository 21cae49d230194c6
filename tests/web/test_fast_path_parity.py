"""The fast path answers exactly as Flask would: each case runs on an app with fast views
and on one that sends every request through Flask, and the answers must be the same."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, request_started
from flask.testing import FlaskClient

from agent_registry import create_app
from harness.clock import FakeClock

LIMIT = 1024
MEANINGFUL_HEADERS = ("Content-Type", "X-Protocol-Version", "Allow", "WWW-Authenticate")
# What a case may have changed. Regression: OPTIONS reached the fast views, acknowledged
# the command and recorded a heartbeat.
STATE = ("/api/v1/agents/agent-1", "/api/v1/agents/agent-1/commands")

Case = Callable[[FlaskClient, str], Any]


def _app(clock: Any, fast: bool) -> Flask:
    app = create_app({"AGENT_REGISTRY_MAX_BODY_BYTES": LIMIT}, clock=clock, fast_paths=fast)
    app.testing = True
    return app


def _prepare(client: FlaskClient) -> str:
    """One registered agent with one command sent to it; returns the command id."""
    client.post("/api/v1/agents/register", json={"id": "agent-1", "group": "group-a"})
    sent = client.post("/api/v1/agents/agent-1/commands", json={"type": "replay"})
    return str(sent.json["commandId"])


def _chunked(client: FlaskClient, path: str, body: bytes, content_type: str | None) -> Any:
    """POST with no Content-Length, as gunicorn hands a chunked request to the app."""
    headers = {"Transfer-Encoding": "chunked"}
    if content_type:
        headers["Content-Type"] = content_type
    return client.post(
        path,
        input_stream=io.BytesIO(body),
        headers=headers,
        environ_overrides={"wsgi.input_terminated": True},
    )


HEARTBEAT = "/api/v1/agents/agent-1/heartbeat"
BIG = b"x" * (LIMIT + 1)


def _ack(command_id: str, agent: str = "agent-1") -> str:
    return f"/api/v1/agents/{agent}/commands/{command_id}/ack"


CASES: dict[str, Case] = {
    "heartbeat-clean": lambda c, _: c.post(HEARTBEAT),
    "heartbeat-query-string": lambda c, _: c.post(HEARTBEAT + "?x=1"),
    "heartbeat-protocol-2": lambda c, _: c.post(HEARTBEAT, headers={"X-Protocol-Version": "2"}),
    "heartbeat-protocol-1": lambda c, _: c.post(HEARTBEAT, headers={"X-Protocol-Version": "1"}),
    "heartbeat-any-media-type": lambda c, _: c.post(
        HEARTBEAT, data=b"hello", content_type="text/plain"
    ),
    "heartbeat-chunked": lambda c, _: _chunked(c, HEARTBEAT, b"ping", None),
    "heartbeat-chunked-too-big": lambda c, _: _chunked(c, HEARTBEAT, BIG, None),
    "heartbeat-too-big": lambda c, _: c.post(HEARTBEAT, data=BIG),
    "heartbeat-unknown-agent": lambda c, _: c.post("/api/v1/agents/ghost/heartbeat"),
    "ack-clean": lambda c, cid: c.post(_ack(cid)),
    "ack-with-body": lambda c, cid: c.post(
        _ack(cid), json={"status": "failure", "message": "m", "details": {"k": 1}}
    ),
    "ack-query-string": lambda c, cid: c.post(_ack(cid) + "?x=1"),
    "ack-protocol-2": lambda c, cid: c.post(_ack(cid), headers={"X-Protocol-Version": "2"}),
    "ack-wrong-media-type": lambda c, cid: c.post(
        _ack(cid), data=b'{"status":"SUCCESS"}', content_type="text/plain"
    ),
    "ack-chunked": lambda c, cid: _chunked(
        c, _ack(cid), b'{"status":"SUCCESS"}', "application/json"
    ),
    "ack-chunked-too-big": lambda c, cid: _chunked(c, _ack(cid), BIG, "application/json"),
    "ack-too-big": lambda c, cid: c.post(
        _ack(cid), data=b'{"message":"' + BIG + b'"}', content_type="application/json"
    ),
    "ack-invalid-json": lambda c, cid: c.post(
        _ack(cid), data=b"{nope", content_type="application/json"
    ),
    "ack-invalid-body": lambda c, cid: c.post(_ack(cid), json={"status": "MAYBE", "x": 1}),
    "ack-not-an-object": lambda c, cid: c.post(_ack(cid), json=[1]),
    "ack-nan": lambda c, cid: c.post(
        _ack(cid), data=b'{"details":{"x":NaN}}', content_type="application/json"
    ),
    "ack-unknown-agent": lambda c, cid: c.post(_ack(cid, agent="ghost")),
    "ack-unknown-command": lambda c, _: c.post(_ack("no-such-command")),
    "ack-twice-other-status": lambda c, cid: (
        c.post(_ack(cid)),
        c.post(_ack(cid), json={"status": "FAILURE"}),
    )[-1],
    "ack-wrong-method": lambda c, cid: c.get(_ack(cid)),
    "ack-options": lambda c, cid: c.options(_ack(cid)),
    "heartbeat-options": lambda c, _: c.options(HEARTBEAT),
    "heartbeat-head": lambda c, _: c.head(HEARTBEAT),
}


def _answer(response: Any, command_id: str) -> tuple[int, dict[str, str | None], str]:
    """Status, the headers that mean something, and the body with the command id (each
    app made its own) written as <command>."""
    headers = {name: response.headers.get(name) for name in MEANINGFUL_HEADERS}
    body = response.get_data(as_text=True).strip().replace(command_id, "<command>")
    return response.status_code, headers, json.dumps(json.loads(body)) if body else ""


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_fast_path_answers_as_flask_does(case: str) -> None:
    answers = []
    for fast in (True, False):
        clock = FakeClock()
        client = _app(clock, fast).test_client()
        command_id = _prepare(client)
        clock.advance(5)  # so that a heartbeat or an ack the case records shows in the state
        answer = _answer(CASES[case](client, command_id), command_id)
        state = [_answer(client.get(path), command_id) for path in STATE]
        answers.append((answer, state))

    assert answers[0] == answers[1]  # the same answer, and the same state afterwards


@pytest.mark.parametrize(("fast", "flask_requests"), [(True, 0), (False, 2)])
def test_only_the_app_with_fast_views_answers_heartbeat_and_ack_outside_flask(
    clock, fast: bool, flask_requests: int
) -> None:
    """The comparison above means something only if one side really skips Flask."""
    app = _app(clock, fast)
    client = app.test_client()
    command_id = _prepare(client)
    seen: list[object] = []
    with request_started.connected_to(lambda sender, **_: seen.append(sender), app):
        assert client.post(HEARTBEAT).status_code == 204
        assert client.post(_ack(command_id)).json["status"] == "ACKNOWLEDGED"

    assert len(seen) == flask_requests

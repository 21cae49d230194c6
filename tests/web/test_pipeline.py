"""Every request passes the one pipeline: its hooks run for the fast views, for Flask views,
for errors and for unknown URLs alike, and a hook that refuses a request changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from agent_registry import create_app
from agent_registry.errors import ValidationFailed
from agent_registry.server.app import PIPELINE_KEY
from agent_registry.web.pipeline import Call, Headers


class Recorder:
    """Notes what each request asked and how it was answered, and marks the answer."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str | None, dict[str, Any]]] = []
        self.answered: list[int] = []

    def before(self, call: Call) -> None:
        self.asked.append((call.method, call.route, dict(call.path_args)))

    def after(self, call: Call, status: int, headers: Headers) -> None:
        self.answered.append(status)
        headers.append(("X-Seen-By", "recorder"))


class Refuse:
    """Refuses every heartbeat before anything is checked (as authentication will)."""

    def before(self, call: Call) -> None:
        if call.endpoint == "agents.heartbeat":
            raise ValidationFailed("refused by a hook")

    def after(self, call: Call, status: int, headers: Headers) -> None:
        pass


@pytest.fixture(params=[True, False], ids=["fast", "flask-only"])
def app(request, clock) -> Flask:
    app = create_app(clock=clock, fast_paths=request.param)
    app.testing = True
    return app


def test_every_request_runs_every_hook_once_whichever_path_answers(app: Flask) -> None:
    recorder = Recorder()
    app.extensions[PIPELINE_KEY].hooks.append(recorder)
    client = app.test_client()

    answers = [
        client.post("/api/v1/agents/register", json={"id": "a-1", "group": "g"}),
        client.post("/api/v1/agents/a-1/heartbeat"),
        client.post("/api/v1/agents/ghost/heartbeat"),
        client.post("/api/v1/agents/a-1/commands/nope/ack"),
        client.get("/api/v1/agents?bogus=1"),
        client.get("/api/v1/nowhere"),
        client.put("/api/v1/agents/a-1"),
    ]

    heartbeat, ack = (
        "/api/v1/agents/<agent_id>/heartbeat",
        ("/api/v1/agents/<agent_id>/commands/<command_id>/ack"),
    )
    assert recorder.asked == [
        ("POST", "/api/v1/agents/register", {}),
        ("POST", heartbeat, {"agent_id": "a-1"}),
        ("POST", heartbeat, {"agent_id": "ghost"}),
        ("POST", ack, {"agent_id": "a-1", "command_id": "nope"}),
        ("GET", "/api/v1/agents", {}),
        ("GET", None, {}),
        ("PUT", None, {}),
    ]
    assert recorder.answered == [201, 204, 404, 404, 400, 404, 405]
    assert [answer.status_code for answer in answers] == [201, 204, 404, 404, 400, 404, 405]
    assert all(answer.headers["X-Seen-By"] == "recorder" for answer in answers)


def test_a_request_a_hook_refuses_changes_nothing(app: Flask, clock) -> None:
    client = app.test_client()
    client.post("/api/v1/agents/register", json={"id": "a-1", "group": "g"})
    before = client.get("/api/v1/agents/a-1").json
    app.extensions[PIPELINE_KEY].hooks.append(Refuse())
    clock.advance(10)

    refused = client.post("/api/v1/agents/a-1/heartbeat", headers={"X-Protocol-Version": "9"})

    assert refused.status_code == 400
    assert refused.json["message"] == "refused by a hook"  # before the protocol check
    assert client.get("/api/v1/agents/a-1").json == before


class BrokenAfter:
    def before(self, call: Call) -> None:
        pass

    def after(self, call: Call, status: int, headers: Headers) -> None:
        raise RuntimeError("a hook that fails")


def test_a_hook_failing_after_the_answer_does_not_change_the_answer(app: Flask) -> None:
    app.extensions[PIPELINE_KEY].hooks.append(BrokenAfter())
    client = app.test_client()

    registered = client.post("/api/v1/agents/register", json={"id": "a-1", "group": "g"})
    heartbeat = client.post("/api/v1/agents/a-1/heartbeat")

    assert (registered.status_code, registered.json["agentId"]) == (201, "a-1")
    assert heartbeat.status_code == 204
    assert heartbeat.headers["X-Protocol-Version"] == "1"


def test_a_url_flask_redirects_is_redirected_with_its_query_string(app: Flask) -> None:
    """Regression: the pipeline checked the query of a redirected URL against no view."""
    answer = app.test_client().get("/api/v1//agents?status=live")

    assert answer.status_code == 308
    assert answer.headers["Location"].endswith("/api/v1/agents?status=live")

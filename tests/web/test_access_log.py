"""The access log: with AGENT_REGISTRY_ACCESS_LOG=on every request gets exactly one line,
whichever way it is answered, with its route template, status, duration and path ids."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask

from agent_registry import create_app
from agent_registry.errors import ValidationFailed
from agent_registry.server.app import PIPELINE_KEY
from agent_registry.web.access_log import AccessLog
from agent_registry.web.pipeline import Call, Headers

LOGGER = "agent_registry.access"


@pytest.fixture(params=[True, False], ids=["fast", "flask-only"])
def app(request: pytest.FixtureRequest, clock: Any) -> Flask:
    app = create_app({"AGENT_REGISTRY_ACCESS_LOG": "on"}, clock=clock, fast_paths=request.param)
    app.testing = True
    return app


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == LOGGER]


def fields(record: logging.LogRecord) -> dict[str, Any]:
    names = ("method", "route", "status", "agent_id", "command_id")
    return {name: getattr(record, name) for name in names if hasattr(record, name)}


def test_every_kind_of_request_gets_exactly_one_line_with_its_route_and_status(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    client = app.test_client()
    client.post("/api/v1/agents/register", json={"id": "a-1", "group": "g"})
    sent = client.post("/api/v1/agents/a-1/commands", json={"type": "deep-trace"}).get_json()
    command_id = sent["commandId"]
    caplog.clear()

    statuses = [
        client.post("/api/v1/agents/a-1/heartbeat").status_code,  # a fast view
        client.get("/api/v1/agents/a-1").status_code,  # a Flask view
        client.post(
            f"/api/v1/agents/a-1/commands/{command_id}/ack", json={"status": "SUCCESS"}
        ).status_code,
        client.get("/api/v1/agents/ghost").status_code,  # a 4xx from the core
        client.get("/api/v1/agents?bogus=1").status_code,  # a 4xx from validation
        client.get("/no/such/url").status_code,  # no route at all
        client.put("/api/v1/agents/register").status_code,  # a route, not this method
    ]

    assert statuses == [204, 200, 200, 404, 400, 404, 405]
    assert [fields(record) for record in access_records(caplog)] == [
        {
            "method": "POST",
            "route": "/api/v1/agents/<agent_id>/heartbeat",
            "status": 204,
            "agent_id": "a-1",
        },
        {"method": "GET", "route": "/api/v1/agents/<agent_id>", "status": 200, "agent_id": "a-1"},
        {
            "method": "POST",
            "route": "/api/v1/agents/<agent_id>/commands/<command_id>/ack",
            "status": 200,
            "agent_id": "a-1",
            "command_id": command_id,
        },
        {
            "method": "GET",
            "route": "/api/v1/agents/<agent_id>",
            "status": 404,
            "agent_id": "ghost",
        },
        {"method": "GET", "route": "/api/v1/agents", "status": 400},
        {"method": "GET", "route": "/no/such/url", "status": 404},
        {"method": "PUT", "route": "/api/v1/agents/register", "status": 405},
    ]
    for record in access_records(caplog):
        assert record.levelno == logging.INFO
        assert record.duration_ms >= 0  # type: ignore[attr-defined]


class Refuse:
    """Refuses every heartbeat before anything is checked (as authentication will)."""

    def before(self, call: Call) -> None:
        if call.endpoint == "agents.heartbeat":
            raise ValidationFailed("refused by a hook")

    def after(self, call: Call, status: int, headers: Headers) -> None:
        pass


def test_a_request_another_hook_refuses_still_gets_its_line(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    app.extensions[PIPELINE_KEY].hooks.append(Refuse())

    status = app.test_client().post("/api/v1/agents/a-1/heartbeat").status_code

    assert status == 400
    assert [fields(record) for record in access_records(caplog)] == [
        {
            "method": "POST",
            "route": "/api/v1/agents/<agent_id>/heartbeat",
            "status": 400,
            "agent_id": "a-1",
        }
    ]


def test_an_event_stream_gets_one_line_when_its_headers_leave(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    client = app.test_client()
    client.post("/api/v1/agents/register", json={"id": "a-1", "group": "g"})
    caplog.clear()

    response = client.get("/api/v1/agents/a-1/events", buffered=False)
    response.close()

    assert [fields(record) for record in access_records(caplog)] == [
        {
            "method": "GET",
            "route": "/api/v1/agents/<agent_id>/events",
            "status": 200,
            "agent_id": "a-1",
        }
    ]


def test_without_the_setting_no_hook_is_installed(clock: Any) -> None:
    app = create_app(clock=clock)

    assert not any(isinstance(hook, AccessLog) for hook in app.extensions[PIPELINE_KEY].hooks)

"""The published OpenAPI document, and the checker the API tests validate answers with."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from agent_registry import create_app
from agent_registry.web.openapi import openapi_path
from tests.openapi_contract import ContractViolation, answer_schema, check_answer


@pytest.fixture
def app() -> Flask:
    return create_app()


def test_the_document_is_openapi_3_1_and_has_every_declared_route(app: Flask) -> None:
    document = app.test_client().get("/api/v1/openapi.json").json

    assert document["openapi"] == "3.1.0"
    routes = {
        openapi_path(rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static" and app.view_functions[rule.endpoint].spec.documented
    }
    assert set(document["paths"]) == routes
    assert not any(path.startswith("/ui") for path in document["paths"])  # not API


def _agent(**changes: Any) -> dict[str, Any]:
    agent = {
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
    agent.update(changes)
    return {key: value for key, value in agent.items() if value != "<absent>"}


@pytest.mark.parametrize(
    "changes",
    [{"extra": 1}, {"state": "GONE"}, {"connected": "<absent>"}, {"routeIds": "route-a"}],
    ids=["unknown-field", "unknown-state", "missing-field", "wrong-type"],
)
def test_the_checker_refuses_an_answer_off_the_document(app: Flask, changes: dict) -> None:
    schema = answer_schema(app, "GET", "/api/v1/agents/agent-1", 200)
    assert schema is not None
    check_answer(schema, _agent(), "a conforming agent")

    with pytest.raises(ContractViolation):
        check_answer(schema, _agent(**changes), "a broken agent")


def test_the_checker_refuses_an_undocumented_success_status(app: Flask) -> None:
    with pytest.raises(ContractViolation):
        answer_schema(app, "GET", "/api/v1/agents/agent-1", 201)


def test_any_error_answer_is_checked_against_the_error_shape(app: Flask) -> None:
    schema = answer_schema(app, "GET", "/api/v1/nowhere", 404)
    assert schema is not None

    with pytest.raises(ContractViolation):
        check_answer(schema, {"message": "no status, no code"}, "a bare error")

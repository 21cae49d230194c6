"""The fast views' compiled rules answer only where werkzeug's matcher gives the same rule."""

from __future__ import annotations

import pytest
from werkzeug.routing import Map, Rule

from agent_registry import create_app
from agent_registry.web.fast_routes import FastRoutes

HEARTBEAT = "/api/v1/agents/<agent_id>/heartbeat"
ACK = "/api/v1/agents/<agent_id>/commands/<command_id>/ack"


def _map(*extra: Rule) -> Map:
    return Map(
        [
            Rule(HEARTBEAT, endpoint="heartbeat", methods=["POST"]),
            Rule("/api/v1/agents/<agent_id>", endpoint="get", methods=["GET"]),
            *extra,
        ]
    )


def test_the_apps_fast_views_are_compiled() -> None:
    app = create_app()
    routes = FastRoutes(app.url_map, ["agents.heartbeat", "commands.acknowledge"])

    assert len(routes) == 2


@pytest.mark.parametrize(
    ("path", "method", "compiled"),
    [
        ("/api/v1/agents/a-1/heartbeat", "POST", True),
        ("/api/v1/agents/register/heartbeat", "POST", True),
        ("/api/v1/agents/a:b.c_d-e/heartbeat", "POST", True),
        ("/api/v1/agents/é/heartbeat", "POST", True),
        ("/api/v1/agents/a-1/commands/c-1/ack", "POST", True),
        ("/api/v1/agents/a-1/heartbeat", "GET", False),
        ("/api/v1/agents/a-1/heartbeat", "OPTIONS", False),
        ("/api/v1/agents/a-1/heartbeat", "HEAD", False),
        ("/api/v1/agents/a-1/heartbeat/", "POST", False),
        ("/api/v1/agents//heartbeat", "POST", False),
        ("/api/v1/agents/a-1/commands//ack", "POST", False),
        ("/api/v1/agents/a-1/commands/c-1/ack/x", "POST", False),
    ],
)
def test_a_compiled_rule_answers_only_where_werkzeug_gives_that_rule(
    path: str, method: str, compiled: bool
) -> None:
    app = create_app()
    routes = FastRoutes(app.url_map, ["agents.heartbeat", "commands.acknowledge"])
    found = routes.match(path, method)

    assert (found is not None) == compiled
    if found is not None:
        rule, arguments = app.url_map.bind("localhost").match(path, method, return_rule=True)
        assert (found[0], dict(found[1])) == (rule, arguments)


@pytest.mark.parametrize(
    "shadow",
    [
        Rule("/api/v1/agents/register/heartbeat", endpoint="shadow", methods=["POST"]),
        Rule("/api/<path:rest>", endpoint="shadow", methods=["POST"]),
        Rule("/api/v1/agents/<agent_id>/heart<beat>", endpoint="shadow", methods=["POST"]),
        Rule("/api/v1/<kind>/<agent_id>/heartbeat", endpoint="shadow", methods=["POST"]),
    ],
    ids=["static-segment", "path-converter", "mixed-segment", "argument-where-text-is"],
)
def test_a_rule_another_rule_may_shadow_is_left_to_werkzeug(shadow: Rule) -> None:
    assert len(FastRoutes(_map(shadow), ["heartbeat"])) == 0


def test_a_fast_rule_with_defaults_is_left_to_werkzeug() -> None:
    rules = [Rule(HEARTBEAT, endpoint="heartbeat", methods=["POST"], defaults={"extra": 1})]

    assert len(FastRoutes(Map(rules), ["heartbeat"])) == 0


def test_rules_apart_by_a_text_segment_or_their_length_are_compiled() -> None:
    others = [
        Rule("/api/v1/agents/<agent_id>/events", endpoint="events", methods=["GET"]),
        Rule("/api/v2/<path:rest>", endpoint="v2", methods=["POST"]),
        Rule("/api/v1/agents/<agent_id>/heartbeat/<extra>", endpoint="longer", methods=["POST"]),
    ]

    assert len(FastRoutes(_map(*others), ["heartbeat"])) == 1

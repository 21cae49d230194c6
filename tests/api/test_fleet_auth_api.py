"""§ Security rows of the fleet operations: delete and prune need role admin; cancel needs
what sending the command needs; a deleted agent's tokens stop working. Both stores."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from agent_registry.security.signing import generate_pem
from agent_registry.security.tokens import Role
from harness.clock import FakeClock
from tests.api import assert_error
from tests.api.test_auth_api import SECRET, Fleet

STALE, DEAD = 90.0, 300.0


@pytest.fixture
def fleet(make_app: Callable[..., Flask], clock: FakeClock, tmp_path) -> Fleet:
    key = tmp_path / "signing.pem"
    key.write_bytes(generate_pem())
    app = make_app(auth="on", token_secret=SECRET, signing_key_file=str(key))
    return Fleet(app, clock)


def agent_ids(fleet: Fleet) -> list[str]:
    listed = fleet.call("GET", "/api/v1/agents", fleet.operator(Role.VIEWER))
    assert listed.status_code == 200
    return [agent["id"] for agent in listed.json]


def command_statuses(fleet: Fleet, command_id: str) -> dict[str, str]:
    read = fleet.call("GET", f"/api/v1/commands/{command_id}", fleet.operator(Role.VIEWER))
    assert read.status_code == 200
    return {d["agentId"]: d["status"] for d in read.json["deliveries"]}


def not_admins(fleet: Fleet, agent_token: str) -> list[tuple[int, str, str | None]]:
    """(status, code, token) of every caller that may not delete."""
    return [
        (403, "FORBIDDEN", fleet.operator(Role.VIEWER)),
        (403, "FORBIDDEN", fleet.operator(Role.OPERATOR)),
        (403, "FORBIDDEN", fleet.enrollment()),
        (403, "FORBIDDEN", agent_token),
        (401, "UNAUTHENTICATED", None),
        (401, "UNAUTHENTICATED", "not-a-token"),
    ]


# --- delete and prune: role admin --------------------------------------------------------------


def test_delete_needs_role_admin_and_a_refused_delete_changes_nothing(fleet: Fleet) -> None:
    token = fleet.enroll("agent-1")
    for status, code, other in not_admins(fleet, token):
        assert_error(fleet.call("DELETE", "/api/v1/agents/agent-1", other), status, code)
    assert agent_ids(fleet) == ["agent-1"]
    assert fleet.call("POST", "/api/v1/agents/agent-1/heartbeat", token).status_code == 204

    # An admin's groups do not matter for a delete.
    admin = fleet.operator(Role.ADMIN, ["elsewhere"])
    assert fleet.call("DELETE", "/api/v1/agents/agent-1", admin).status_code == 204
    assert agent_ids(fleet) == []


def test_an_admin_deleting_an_unknown_agent_gets_404(fleet: Fleet) -> None:
    response = fleet.call("DELETE", "/api/v1/agents/ghost", fleet.operator(Role.ADMIN))
    assert_error(response, 404, "AGENT_NOT_FOUND")
    # Without the role, the answer says nothing about existence.
    refused = fleet.call("DELETE", "/api/v1/agents/ghost", fleet.operator(Role.OPERATOR))
    assert_error(refused, 403, "FORBIDDEN")


def test_prune_needs_role_admin_and_a_refused_prune_changes_nothing(fleet: Fleet) -> None:
    token = fleet.enroll("agent-1")
    fleet.clock.advance(STALE + DEAD)
    fleet.app.extensions["agent_registry"].registry.sweep()
    path = "/api/v1/agents?status=DEAD"
    for status, code, other in not_admins(fleet, token):
        assert_error(fleet.call("DELETE", path, other), status, code)
    assert agent_ids(fleet) == ["agent-1"]

    answered = fleet.call("DELETE", path, fleet.operator(Role.ADMIN))
    assert (answered.status_code, answered.json) == (200, {"deleted": 1})


def test_a_bad_prune_query_is_401_without_a_token_and_400_with_one(fleet: Fleet) -> None:
    path = "/api/v1/agents?status=LIVE"
    assert_error(fleet.call("DELETE", path), 401, "UNAUTHENTICATED")
    # Validation comes before the permission check, as for every request.
    assert_error(
        fleet.call("DELETE", path, fleet.operator(Role.VIEWER)),
        400,
        "VALIDATION_FAILED",
        ["status"],
    )


# --- a deleted agent's tokens ----------------------------------------------------------------


@pytest.mark.parametrize("request_kind", ["heartbeat", "events", "ack", "renewal"])
def test_a_deleted_agents_token_is_401_everywhere(fleet: Fleet, request_kind: str) -> None:
    token = fleet.enroll("agent-1")
    command = fleet.send("agent-1/commands", fleet.operator())
    command_id = command.json["commandId"]
    assert (
        fleet.call("DELETE", "/api/v1/agents/agent-1", fleet.operator(Role.ADMIN)).status_code
        == 204
    )

    calls: dict[str, Callable[[], Any]] = {
        "heartbeat": lambda: fleet.call("POST", "/api/v1/agents/agent-1/heartbeat", token),
        "events": lambda: fleet.call("GET", "/api/v1/agents/agent-1/events", token),
        "ack": lambda: fleet.call(
            "POST", f"/api/v1/agents/agent-1/commands/{command_id}/ack", token
        ),
        "renewal": lambda: fleet.register("agent-1", "group-a", token),
    }
    assert_error(calls[request_kind](), 401, "UNAUTHENTICATED")
    assert agent_ids(fleet) == []


def test_the_token_of_a_deleted_agent_stays_refused_after_the_id_enrolls_again(
    fleet: Fleet,
) -> None:
    """On a clock that has not moved, the new registration must not reuse the generation."""
    old = fleet.enroll("agent-1")
    fleet.call("DELETE", "/api/v1/agents/agent-1", fleet.operator(Role.ADMIN))
    new = fleet.enroll("agent-1")

    assert_error(
        fleet.call("POST", "/api/v1/agents/agent-1/heartbeat", old), 401, "UNAUTHENTICATED"
    )
    assert fleet.call("POST", "/api/v1/agents/agent-1/heartbeat", new).status_code == 204


# --- cancel: as for sending it -----------------------------------------------------------------


@pytest.fixture
def sent(fleet: Fleet) -> dict[str, str]:
    """agent-1 in group-a, agent-2 in group-b; one command of each target kind."""
    fleet.enroll("agent-1", "group-a")
    fleet.enroll("agent-2", "group-b")
    admin = fleet.operator(Role.ADMIN)
    found = {}
    for kind, path in (
        ("agent", "agent-1/commands"),
        ("group", "groups/group-a/commands"),
        ("all", "commands"),
    ):
        answer = fleet.send(path, admin)
        assert answer.status_code == 202
        found[kind] = answer.json["commandId"]
    return found


def cancel(fleet: Fleet, command_id: str, token: str | None) -> Any:
    return fleet.call("POST", f"/api/v1/commands/{command_id}/cancel", token)


@pytest.mark.parametrize(
    ("kind", "scope"),
    [("agent", ["group-a"]), ("group", ["group-a"]), ("all", None)],
    ids=["one agent", "a group", "all"],
)
def test_cancel_needs_what_sending_the_command_needs(
    fleet: Fleet, sent: dict[str, str], kind: str, scope: list[str] | None
) -> None:
    command_id = sent[kind]
    agent_token = fleet.enroll("agent-3", "group-a")
    refused = [
        (403, fleet.operator(Role.VIEWER, scope)),
        (403, fleet.operator(Role.OPERATOR, ["group-b"])),
        (403, fleet.enrollment()),
        (403, agent_token),
        (401, None),
    ]
    for status, token in refused:
        answer = cancel(fleet, command_id, token)
        assert_error(answer, status, "FORBIDDEN" if status == 403 else "UNAUTHENTICATED")
    assert "CANCELLED" not in command_statuses(fleet, command_id).values()  # nothing changed

    answer = cancel(fleet, command_id, fleet.operator(Role.OPERATOR, scope))
    assert answer.status_code == 200
    assert set(command_statuses(fleet, command_id).values()) == {"CANCELLED"}
    assert cancel(fleet, command_id, fleet.operator(Role.ADMIN, scope)).status_code == 200


def test_cancelling_a_command_to_all_needs_every_group(fleet: Fleet, sent: dict[str, str]) -> None:
    scoped = fleet.operator(Role.ADMIN, ["group-a", "group-b"])
    assert_error(cancel(fleet, sent["all"], scoped), 403, "FORBIDDEN")


def test_a_scoped_operator_cannot_learn_whether_a_command_exists(
    fleet: Fleet, sent: dict[str, str]
) -> None:
    """403 for an unknown command too, unless the token reaches every group (then 404)."""
    scoped = fleet.operator(Role.OPERATOR, ["group-a"])
    assert_error(cancel(fleet, "no-such-command", scoped), 403, "FORBIDDEN")
    assert_error(cancel(fleet, "no-such-command", fleet.operator()), 404, "COMMAND_NOT_FOUND")
    assert_error(cancel(fleet, "no-such-command", fleet.operator(Role.VIEWER)), 403, "FORBIDDEN")


def test_the_agent_target_of_a_cancel_is_judged_by_the_agents_group(
    fleet: Fleet, sent: dict[str, str]
) -> None:
    to_agent_2 = fleet.send("agent-2/commands", fleet.operator()).json["commandId"]
    assert_error(
        cancel(fleet, to_agent_2, fleet.operator(Role.OPERATOR, ["group-a"])), 403, "FORBIDDEN"
    )
    assert cancel(fleet, to_agent_2, fleet.operator(Role.OPERATOR, ["group-b"])).status_code == 200


def test_a_cancel_with_a_bad_body_is_400_before_the_permission_check(
    fleet: Fleet, sent: dict[str, str]
) -> None:
    viewer = fleet.operator(Role.VIEWER)
    path = f"/api/v1/commands/{sent['group']}/cancel"
    answer = fleet.call("POST", path, viewer, json={"why": "x"})
    assert_error(answer, 400, "VALIDATION_FAILED", ["why"])
    assert_error(fleet.call("POST", path, viewer, json={}), 403, "FORBIDDEN")

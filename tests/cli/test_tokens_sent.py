"""--token / AGENT_REGISTRY_TOKEN reach the server as a bearer token, and a 401 or 403 is
one sentence with exit code 7 (against a stub server: only the client side is tested)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from agent_registry.cli.main import main

SERVER_COMMANDS = [
    ["agents", "list"],
    ["agents", "show", "a-1"],
    ["commands", "show", "c-1"],
    ["send", "--all", "--type", "replay"],
    ["send", "--agent", "a-1", "--type", "replay", "--wait"],
]
FORBIDDEN = {
    "status": 403,
    "error": "Forbidden",
    "code": "FORBIDDEN",
    "message": "Role 'viewer' may not send commands.",
}


def invoke(stub, *args: str, env: dict[str, str | None] | None = None):
    return CliRunner().invoke(
        main,
        ["--url", stub.url, *args],
        env={"AGENT_REGISTRY_TOKEN": None, **(env or {})},
        prog_name="agent-registry",
    )


@pytest.mark.parametrize("args", SERVER_COMMANDS, ids=" ".join)
@pytest.mark.parametrize("where", ["option before", "option after", "environment"])
def test_every_server_command_sends_the_token(stub, args, where):
    stub.answers(403, FORBIDDEN)
    if where == "option before":
        result = invoke(stub, "--token", "T1", *args)
    elif where == "option after":
        result = invoke(stub, *args, "--token", "T1")
    else:
        result = invoke(stub, *args, env={"AGENT_REGISTRY_TOKEN": "T1"})

    assert result.exit_code == 7, result.output
    assert stub.authorizations() == ["Bearer T1"]


def test_without_a_token_no_authorization_is_sent(stub):
    result = invoke(stub, "agents", "list")

    assert result.exit_code == 0, result.output
    assert stub.authorizations() == [None]


def test_the_option_after_the_command_wins_over_the_environment(stub):
    invoke(stub, "agents", "list", "--token", "T2", env={"AGENT_REGISTRY_TOKEN": "T1"})
    invoke(stub, "--token", "T3", "agents", "list", env={"AGENT_REGISTRY_TOKEN": "T1"})

    assert stub.authorizations() == ["Bearer T2", "Bearer T3"]


@pytest.mark.parametrize(
    ("status", "body", "sentence"),
    [
        (
            401,
            {"code": "UNAUTHENTICATED", "message": "This request needs a bearer token."},
            "This request needs a bearer token — pass a valid operator token with --token "
            "or AGENT_REGISTRY_TOKEN.",
        ),
        (
            401,
            {"code": "TOKEN_EXPIRED", "message": "The token has expired; get a new one."},
            "The token has expired; get a new one — pass a valid operator token with "
            "--token or AGENT_REGISTRY_TOKEN.",
        ),
        (
            403,
            {"code": "FORBIDDEN", "message": "Role 'viewer' may not send commands."},
            "Role 'viewer' may not send commands — use a token whose role and groups allow it.",
        ),
    ],
    ids=["missing", "expired", "forbidden"],
)
def test_a_refusal_is_one_sentence_and_exit_7(stub, status, body, sentence):
    stub.answers(status, {"status": status, "error": "x", **body})

    result = invoke(stub, "send", "--group", "g", "--type", "replay")

    assert result.exit_code == 7
    assert result.stderr == f"Error: {sentence}\n"
    assert result.stdout == ""


def test_a_refusal_without_the_json_error_shape_still_exits_7(stub):
    stub.answers(401, "not the error shape")

    result = invoke(stub, "agents", "list")

    assert result.exit_code == 7
    assert result.stderr == (
        "Error: The server answered 401 Unauthorized to GET /api/v1/agents — pass a valid "
        "operator token with --token or AGENT_REGISTRY_TOKEN.\n"
    )


def test_send_help_documents_exit_7(stub):
    result = invoke(stub, "send", "--help")

    assert "7    the server refused the token" in result.stdout


@pytest.mark.parametrize("where", ["option", "environment"])
def test_simulate_registers_with_the_enrollment_token_and_names_it_when_refused(stub, where):
    stub.answers(401, {"status": 401, "code": "TOKEN_EXPIRED", "message": "The token has expired."})
    args = ["--token", "OPERATOR", "simulate", "--agents", "2"]  # a refusal never execs
    if where == "option":
        result = invoke(stub, *args, "--enrollment-token", "E1")
    else:
        result = invoke(stub, *args, env={"AGENT_REGISTRY_ENROLLMENT_TOKEN": "E1"})

    assert result.exit_code == 7, result.output
    assert stub.requests[0][1] == "/api/v1/agents/register"
    assert stub.authorizations() == ["Bearer E1"]
    assert result.stderr == (
        "Error: The token has expired — pass a valid enrollment token with --enrollment-token "
        "or AGENT_REGISTRY_ENROLLMENT_TOKEN.\n"
    )

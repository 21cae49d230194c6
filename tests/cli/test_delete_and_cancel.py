"""`agents delete` and `commands cancel` against a real server."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e


def test_agents_delete_deletes_the_agent(cli, register, http):
    register("del-1", "del-group")

    result = cli("agents", "delete", "del-1")

    assert result.exit_code == 0, result.output
    assert result.stdout == "Deleted agent del-1.\n"
    assert http.get("/agents/del-1").status_code == 404
    assert http.post("/agents/del-1/heartbeat").json()["code"] == "AGENT_NOT_REGISTERED"


def test_agents_delete_of_an_unknown_agent_exits_3(cli):
    result = cli("agents", "delete", "nobody-at-all")

    assert result.exit_code == 3
    assert result.stderr == "Error: Agent 'nobody-at-all' is not registered.\n"


def test_commands_cancel_cancels_what_is_open_and_prints_the_summary(cli, register, http):
    register("cancel-cli-1", "cancel-cli")
    register("cancel-cli-2", "cancel-cli")
    sent = cli("send", "--group", "cancel-cli", "--type", "replay", "--json")
    command_id = json.loads(sent.stdout)["commandId"]
    http.post(f"/agents/cancel-cli-1/commands/{command_id}/ack")

    result = cli("commands", "cancel", command_id)

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"Command {command_id} cancelled: 2 target(s): 0 pending, 0 delivered, "
        "1 acknowledged, 0 failed, 0 expired, 1 cancelled.\n"
    )
    ack = http.post(f"/agents/cancel-cli-2/commands/{command_id}/ack")
    assert (ack.status_code, ack.json()["code"]) == (409, "COMMAND_CANCELLED")


def test_commands_cancel_of_a_final_command_says_there_was_nothing_to_cancel(cli, register, http):
    register("cancel-done-1", "cancel-done")
    command_id = http.post("/agents/cancel-done-1/commands", json={"type": "replay"}).json()[
        "commandId"
    ]
    http.post(f"/agents/cancel-done-1/commands/{command_id}/ack")

    result = cli("commands", "cancel", command_id)

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        f"Command {command_id}: nothing to cancel, every delivery was already final"
    )


def test_commands_cancel_json_is_the_servers_command(cli, register, http):
    register("cancel-json-1", "cancel-json")
    command_id = http.post("/agents/cancel-json-1/commands", json={"type": "replay"}).json()[
        "commandId"
    ]

    result = cli("commands", "cancel", command_id, "--json")

    assert result.exit_code == 0, result.output
    command = json.loads(result.stdout)
    assert command == http.get(f"/commands/{command_id}").json()
    assert command["deliveries"][0]["status"] == "CANCELLED"


def test_commands_cancel_of_an_unknown_command_exits_3(cli):
    result = cli("commands", "cancel", "no-such-command")

    assert result.exit_code == 3
    assert "no-such-command" in result.stderr


def test_send_wait_exits_8_when_a_target_is_cancelled(cli, register, http):
    """A command cancelled while `send --wait` follows it: not a success."""
    register("send-cancel-1", "send-cancel")
    from agent_registry.cli.main import outcome

    command_id = http.post("/agents/send-cancel-1/commands", json={"type": "replay"}).json()[
        "commandId"
    ]
    cancelled = http.post(f"/commands/{command_id}/cancel").json()

    assert outcome(cancelled, True, None) == (8, "1 of 1 target(s) were cancelled.")

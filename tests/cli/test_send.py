"""`agent-registry send`, with and without --wait, and every exit code it documents."""

from __future__ import annotations

import json
import re

import pytest

from agent_registry.cli import main as cli_module
from agent_registry.client import Command

pytestmark = pytest.mark.e2e


def fail(command: Command) -> None:
    raise RuntimeError("disk full")


def test_wait_exits_0_when_every_target_acknowledged_success(cli, running_agent):
    running_agent("send-ok-1", "send-ok", deep_trace=lambda command: "traced")
    running_agent("send-ok-2", "send-ok", deep_trace=lambda command: "traced")

    result = cli("send", "--group", "send-ok", "--type", "deep-trace", "--wait", "--timeout", "10")

    assert result.exit_code == 0, result.output
    assert "All 2 target(s) acknowledged SUCCESS." in result.stdout
    assert "2 acknowledged" in result.stdout
    assert "waiting for 2 target(s)" in result.stderr  # progress goes to stderr
    assert "acknowledged" in result.stderr


def test_wait_exits_4_when_a_target_acknowledged_failure(cli, running_agent):
    running_agent("send-fail-1", "send-fail", replay=fail)
    running_agent("send-fail-2", "send-fail", replay=lambda command: None)

    result = cli("send", "--group", "send-fail", "--type", "replay", "--wait")

    assert result.exit_code == 4, result.output
    assert "1 of 2 target(s) acknowledged FAILURE." in result.stdout
    failed_row = next(line for line in result.stdout.splitlines() if "send-fail-1" in line)
    assert "FAILED" in failed_row
    assert "disk full" in failed_row
    assert "send-fail-2" not in result.stdout  # only the unhappy deliveries are listed


def test_wait_exits_5_when_a_target_never_acknowledged(cli, register):
    register("send-expire-1", "send-expire")  # no event stream: stays PENDING, then expires

    result = cli(
        "send", "--agent", "send-expire-1", "--type", "deep-trace", "--wait", "--timeout", "10"
    )

    assert result.exit_code == 5, result.output
    assert "1 of 1 target(s) expired without an ack." in result.stdout
    assert "EXPIRED" in result.stdout


def test_wait_exits_6_when_the_timeout_passes_first(cli, register):
    register("send-slow-1", "send-slow")

    result = cli(
        "send", "--agent", "send-slow-1", "--type", "deep-trace", "--wait", "--timeout", "0.3"
    )

    assert result.exit_code == 6, result.output
    assert "1 of 1 target(s) were not final when the 0.3 s timeout passed." in result.stdout
    assert "PENDING" in result.stdout


def test_wait_with_json_prints_only_the_final_command_on_stdout(cli, running_agent):
    running_agent("send-json-1", "send-json", config_update=lambda command: {"applied": 2})

    result = cli(
        "send",
        "--agent",
        "send-json-1",
        "--type",
        "config-update",
        "--payload",
        '{"level": "debug"}',
        "--wait",
        "--json",
    )

    assert result.exit_code == 0, result.output
    command = json.loads(result.stdout)
    assert command["payload"] == {"level": "debug"}
    assert command["summary"]["acknowledged"] == 1
    assert command["deliveries"][0]["result"]["details"] == {"applied": 2}
    assert "All 1 target(s) acknowledged SUCCESS." in result.stderr


def test_without_wait_it_prints_the_command_id_and_exits_0(cli, register, http):
    register("send-fire-1", "send-fire")

    result = cli("send", "--agent", "send-fire-1", "--type", "replay")

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Command ")
    assert "(replay) sent to 1 agent(s)." in result.stdout
    command_id = result.stdout.split()[1]
    assert http.get(f"/commands/{command_id}").status_code == 200


@pytest.mark.parametrize("flag", [True, False])
def test_deliver_on_connect_is_asked_for_with_its_flag_only(cli, register, http, flag):
    register("send-doc-1", "send-doc")
    args = ["send", "--agent", "send-doc-1", "--type", "replay", "--json"]
    result = cli(*args, *(["--deliver-on-connect"] if flag else []))

    assert result.exit_code == 0, result.output
    command_id = json.loads(result.stdout)["commandId"]
    assert http.get(f"/commands/{command_id}").json()["deliverOnConnect"] is flag


def test_all_sends_to_every_live_agent(cli, register, http):
    register("send-all-1", "send-all")
    live = len(http.get("/agents", params={"status": "live"}).json())

    result = cli("send", "--all", "--type", "deep-trace", "--json")

    assert result.exit_code == 0, result.output
    command = json.loads(result.stdout)
    assert command["target"] == {"kind": "all", "value": None}
    assert command["summary"]["targets"] == live


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_payload_from_a_file_or_stdin(cli, register, tmp_path, source):
    register("send-payload-1", "send-payload")
    path = tmp_path / "payload.json"
    path.write_text('{"routeId": "route-a", "seconds": 30}')

    if source == "file":
        result = cli(
            "send",
            "--agent",
            "send-payload-1",
            "--type",
            "deep-trace",
            "--payload",
            f"@{path}",
            "--json",
        )
    else:
        result = cli(
            "send",
            "--agent",
            "send-payload-1",
            "--type",
            "deep-trace",
            "--payload",
            "@-",
            "--json",
            input=path.read_text(),
        )

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["payload"] == {"routeId": "route-a", "seconds": 30}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--agent", "send-nobody"], "Agent 'send-nobody' is not registered."),
        (["--group", "send-empty-group"], "send-empty-group"),
    ],
)
def test_exits_3_when_the_server_rejects_the_target(cli, args, message):
    result = cli("send", *args, "--type", "deep-trace", "--wait")

    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("Error: ")
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_exits_3_naming_the_valid_types_for_an_unknown_type(cli, register):
    register("send-type-1", "send-type")

    result = cli("send", "--agent", "send-type-1", "--type", "reboot")

    assert result.exit_code == 3
    assert "Unknown command type 'reboot'; valid types: config-update, deep-trace, replay" in (
        result.stderr
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--type", "replay"], "exactly one of --agent ID, --group G or --all"),
        (["--agent", "a", "--all", "--type", "replay"], "exactly one of"),
        (["--all", "--type", "replay", "--timeout", "3"], "--timeout only applies with --wait"),
        (["--all", "--type", "replay", "--payload", "{oops"], "not valid JSON"),
        (["--all", "--type", "replay", "--payload", "[1, 2]"], "must be a JSON object"),
        (["--all", "--type", "replay", "--payload", "@/no/such/file"], "cannot read"),
        (["--all", "--type", "replay", "--wait", "--timeout", "0"], "--timeout"),
    ],
)
def test_exits_2_on_wrong_usage(cli, args, message):
    result = cli("send", *args)

    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_ctrl_c_while_waiting_exits_130_and_says_how_to_follow_up(cli, register, monkeypatch):
    register("send-interrupt-1", "send-interrupt")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module, "wait_for_command", interrupted)
    result = cli("send", "--agent", "send-interrupt-1", "--type", "replay", "--wait")

    assert result.exit_code == 130
    assert "agent-registry commands show " in result.stderr


def test_help_documents_the_exit_codes(cli):
    result = cli("send", "--help")

    assert result.exit_code == 0
    codes = re.findall(r"^ +(\d+) +\S", result.stdout.split("Exit codes:")[1], re.MULTILINE)
    assert codes == ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "130"]
    assert "acknowledged FAILURE" in result.stdout

"""`agents list`, `agents show` and `commands show`: tables for people, JSON for scripts."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture
def fleet(register):
    register("list-b", "list-group", version="2.0.0")
    register(
        "list-a", "list-group", name="Alpha", routeIds=["r1", "r2"], capabilities={"replay": True}
    )
    register("list-c", "list-other")


def test_list_prints_a_table_ordered_by_id(cli, fleet):
    result = cli("agents", "list", "--group", "list-group")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "GROUP", "STATE", "CONNECTED", "VERSION", "LAST", "HEARTBEAT"]
    assert [line.split()[0] for line in lines[1:]] == ["list-a", "list-b"]
    assert lines[2].split()[1:5] == ["list-group", "LIVE", "no", "2.0.0"]


def test_list_json_is_the_servers_records(cli, fleet):
    result = cli("agents", "list", "--group", "list-group", "--json")

    assert result.exit_code == 0, result.output
    agents = json.loads(result.stdout)
    assert [agent["id"] for agent in agents] == ["list-a", "list-b"]
    assert agents[0]["routeIds"] == ["r1", "r2"]


def test_list_filters_by_status(cli, fleet):
    live = json.loads(cli("agents", "list", "--status", "live", "--json").stdout)
    dead = cli("agents", "list", "--status", "DEAD", "--group", "list-group")

    assert {"list-a", "list-b", "list-c"} <= {agent["id"] for agent in live}
    assert dead.exit_code == 0
    assert dead.stdout == ""
    assert "No agents match." in dead.stderr


def test_list_pages_through_a_fleet_larger_than_one_page(cli, register, server):
    from agent_registry.client import RegistryApi

    for number in range(5):
        register(f"page-{number}", "page-group")
    with RegistryApi(server.url) as api:
        agents = api.agents(group="page-group", page_size=2)
    assert [agent["id"] for agent in agents] == [f"page-{number}" for number in range(5)]


def test_list_with_an_unknown_status_exits_3_with_the_servers_reason(cli):
    result = cli("agents", "list", "--status", "sleepy")

    assert result.exit_code == 3
    assert result.stderr == (
        "Error: The query string is invalid: status — status: Unknown value 'sleepy'; "
        "valid values: LIVE, STALE, DEAD.\n"
    )


def test_show_prints_every_field(cli, fleet):
    result = cli("agents", "show", "list-a")

    assert result.exit_code == 0, result.output
    fields = dict(line.split(":", 1) for line in result.stdout.splitlines())
    assert fields["name"].strip() == "Alpha"
    assert fields["routeIds"].strip() == "r1, r2"
    assert fields["capabilities"].strip() == '{"replay":true}'
    assert fields["connected"].strip() == "no"


def test_show_json(cli, fleet):
    result = cli("agents", "show", "list-a", "--json")

    assert result.exit_code == 0
    assert json.loads(result.stdout)["group"] == "list-group"


def test_show_an_unknown_agent_exits_3(cli):
    result = cli("agents", "show", "nobody-here")

    assert result.exit_code == 3
    assert result.stderr == "Error: Agent 'nobody-here' is not registered.\n"


def test_commands_show_lists_every_delivery(cli, running_agent, register, http):
    running_agent("show-cmd-1", "show-cmd", replay=lambda command: "replayed 3")
    register("show-cmd-2", "show-cmd")
    sent = cli("send", "--group", "show-cmd", "--type", "replay", "--json")
    command_id = json.loads(sent.stdout)["commandId"]
    cli("send", "--agent", "show-cmd-1", "--type", "replay", "--wait", "--timeout", "5")

    result = cli("commands", "show", command_id)

    assert result.exit_code == 0, result.output
    assert f"commandId:  {command_id}" in result.stdout
    assert "target:     group show-cmd" in result.stdout
    rows = {
        line.split()[0]: line.split()[1]
        for line in result.stdout.splitlines()
        if line.startswith("show-cmd-")
    }
    assert rows["show-cmd-2"] == "PENDING"
    assert rows["show-cmd-1"] in {"DELIVERED", "ACKNOWLEDGED"}


def test_commands_show_json(cli, register):
    register("show-json-1", "show-json")
    command_id = json.loads(
        cli("send", "--agent", "show-json-1", "--type", "deep-trace", "--json").stdout
    )["commandId"]

    result = cli("commands", "show", command_id, "--json")

    assert result.exit_code == 0
    assert json.loads(result.stdout)["deliveries"][0]["agentId"] == "show-json-1"


def test_commands_show_an_unknown_command_exits_3(cli):
    result = cli("commands", "show", "no-such-command")

    assert result.exit_code == 3
    assert result.stderr.startswith("Error: ")
    assert "no-such-command" in result.stderr

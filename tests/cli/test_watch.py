"""``agent-registry watch``: JSON lines in a pipe against a real server, reconnects, refusals,
and the terminal view rendered on a recording console."""

from __future__ import annotations

import io

import pytest
from click.testing import CliRunner
from rich.console import Console

from agent_registry.cli.fleet_view import FleetView
from agent_registry.cli.fleet_watch import watch_json, watch_live
from agent_registry.cli.main import main
from agent_registry.client.operator_events import (
    AgentEvent,
    CommandEvent,
    FleetEvent,
    OperatorEvent,
    StreamState,
)
from tests.cli.conftest import CLI_SERVER_ENV
from tests.cli.watch_process import Watch

AT = "2026-03-11T10:15:30.123Z"


def agent(agent_id: str, state: str = "LIVE", connected: bool = False, **more: object) -> dict:
    return {
        "id": agent_id,
        "group": "g",
        "state": state,
        "connected": connected,
        "registeredAt": AT,
        "lastHeartbeatAt": AT,
        "stateChangedAt": AT,
        **more,
    }


def command(acked: int, pending: int = 0, **more: object) -> dict:
    return {
        "commandId": "0192f8c4-3c1a-7b2e-9f00-123456789abc",
        "type": "deep-trace",
        "target": {"kind": "group", "value": "g"},
        "createdBy": "alice",
        "summary": {
            "targets": 3,
            "pending": pending,
            "delivered": 3 - acked - pending,
            "acknowledged": acked,
            "failed": 0,
            "expired": 0,
            "cancelled": 0,
        },
        **more,
    }


# --- in a pipe, against a real server ----------------------------------------------------------


@pytest.mark.e2e
def test_watch_in_a_pipe_prints_one_json_line_per_event(server, register) -> None:
    watch = Watch(server.url)  # stdout is a pipe: JSON lines without --json
    try:
        first = watch.until(lambda line: line["event"] == "fleet")
        assert set(first["data"]) == {"LIVE", "STALE", "DEAD", "connected", "at"}
        register("watched-1", "watch-group")

        line = watch.until(lambda line: line["event"] == "agent")
        assert line["data"]["id"] == "watched-1" and line["data"]["state"] == "LIVE"
        assert watch.notice(lambda text: text == "watch: connected")
    finally:
        watch.stop()


@pytest.mark.e2e
def test_watch_group_shows_only_that_groups_agents(server, register) -> None:
    watch = Watch(server.url, "--json", "--group", "watch-only")
    try:
        watch.until(lambda line: line["event"] == "fleet")
        register("elsewhere-1", "watch-other")
        register("mine-1", "watch-only")

        line = watch.until(lambda line: line["event"] == "agent")
        assert line["data"]["id"] == "mine-1"
    finally:
        watch.stop()


@pytest.mark.e2e
def test_watch_reconnects_with_backoff_when_the_server_restarts(start_server) -> None:
    server = start_server(CLI_SERVER_ENV)
    watch = Watch(server.url, "--json")
    try:
        watch.until(lambda line: line["event"] == "fleet")
        server.restart()

        assert "reconnecting in" in watch.notice(
            lambda text: text.startswith("watch: disconnected")
        )
        watch.notice(lambda text: text == "watch: connected", within=30)
        assert watch.until(lambda line: line["event"] == "fleet")  # the counts afresh
    finally:
        watch.stop()


def test_watch_with_a_bad_url_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["--url", "ftp://nowhere", "watch"])
    assert result.exit_code == 2


# --- the JSON lines and the terminal view, from given events -------------------------------------


EVENTS: list[OperatorEvent] = [
    StreamState(connected=True),
    FleetEvent({"LIVE": 2, "STALE": 1, "DEAD": 0, "connected": 1}, AT),
    AgentEvent(agent("a1")),
    AgentEvent(agent("a1", connected=True)),
    AgentEvent(agent("a2", state="STALE")),
    AgentEvent(agent("a3", deleted=True)),
    CommandEvent(command(acked=1, pending=1)),
    CommandEvent(command(acked=2)),
]


def test_json_lines_are_the_server_events_and_the_connection_goes_to_stderr() -> None:
    out, err = io.StringIO(), io.StringIO()

    watch_json(EVENTS, out, err)

    lines = out.getvalue().splitlines()
    assert len(lines) == 7
    assert lines[0] == (
        '{"event":"fleet","data":{"LIVE":2,"STALE":1,"DEAD":0,"connected":1,"at":"' + AT + '"}}'
    )
    assert lines[5].startswith('{"event":"command","data":{"commandId":')
    assert err.getvalue() == "watch: connected\n"


def render(view: FleetView) -> str:
    console = Console(file=io.StringIO(), record=True, force_terminal=True, width=140)
    console.print(view)
    return console.export_text()


def test_the_terminal_view_shows_counts_agent_changes_and_commands_in_progress() -> None:
    view = FleetView("http://registry.test", None)
    for event in EVENTS:
        view.apply(event)

    text = render(view)

    assert "LIVE 2" in text and "STALE 1" in text and "DEAD 0" in text and "connected 1" in text
    for change in ("registered", "connected", "went STALE", "deleted"):
        assert change in text
    assert "2/3" in text and "in progress" in text and "alice" in text
    assert "connected (http://registry.test)" in text


def test_a_finished_command_reads_done_and_a_rollout_state_is_shown_as_given() -> None:
    view = FleetView("http://registry.test", "g")
    view.apply(CommandEvent(command(acked=3)))
    assert "done" in render(view) and "3/3" in render(view)

    view.apply(CommandEvent(command(acked=1, state="RUNNING")))
    assert "RUNNING" in render(view)


def test_the_terminal_view_says_it_is_reconnecting() -> None:
    view = FleetView("http://registry.test", None)
    view.apply(StreamState(connected=False, reason="Cannot reach it.", retry_in=2.5, attempt=3))

    text = render(view)

    assert "disconnected: Cannot reach it; reconnecting in 2.5 s" in text
    assert "attempt 4" in text
    assert "waiting for the first counts" in text


def test_the_live_view_draws_the_last_state_when_the_events_end() -> None:
    console = Console(file=io.StringIO(), record=True, force_terminal=True, width=140)
    view = FleetView("http://registry.test", None)

    watch_live(EVENTS, view, console)

    assert "LIVE 2" in console.export_text()

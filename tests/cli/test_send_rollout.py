"""`agent-registry send --batch-size ...`: a rollout followed with --wait, its progress
shown as it changes, and exit code 9 when its failure limit stops it."""

from __future__ import annotations

import pytest

from agent_registry.client import Command

pytestmark = pytest.mark.e2e


def fail(command: Command) -> None:
    raise RuntimeError("disk full")


def test_a_rollout_shows_its_batches_progressing_and_exits_0(cli, running_agent):
    for n in range(4):
        running_agent(f"roll-ok-{n}", "roll-ok", deep_trace=lambda command: "traced")

    result = cli(
        "send", "--group", "roll-ok", "--type", "deep-trace", "--batch-size", "50%", "--wait"
    )

    assert result.exit_code == 0, result.output
    assert "All 4 target(s) acknowledged SUCCESS." in result.stdout
    assert "rollout 2/4 sent" in result.stderr  # the first batch, while it runs
    assert "window 2" in result.stderr
    assert "state:" in result.stdout and "COMPLETED" in result.stdout


def test_a_rollout_stopped_by_its_failure_limit_exits_9(cli, running_agent, register):
    running_agent("roll-stop-0", "roll-stop", replay=fail)
    running_agent("roll-stop-1", "roll-stop", replay=fail)
    for n in range(2, 5):
        register(f"roll-stop-{n}", "roll-stop")  # never reached: the rollout stops first

    result = cli(
        "send",
        "--group",
        "roll-stop",
        "--type",
        "replay",
        "--batch-size",
        "1",
        "--max-failures",
        "1",
        "--wait",
        "--timeout",
        "20",
    )

    assert result.exit_code == 9, result.output
    assert "The rollout was STOPPED: more than 1 target(s) failed or expired" in result.stdout
    assert "3 of 5 were never sent" in result.stdout
    assert "STOPPED" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--agent", "x", "--batch-size", "2"], "is for --group or --all"),
        (["--group", "g", "--max-failures", "2"], "need --batch-size"),
        (["--group", "g", "--batch-size", "two"], "a whole number or a percentage"),
    ],
)
def test_rollout_options_are_checked_before_anything_is_sent(cli, args, message):
    result = cli("send", "--type", "replay", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_the_server_refuses_a_bad_percentage_with_exit_3(cli, register):
    register("roll-bad-0", "roll-bad")
    result = cli("send", "--group", "roll-bad", "--type", "replay", "--batch-size", "0%")
    assert result.exit_code == 3, result.output
    assert "batchSize" in result.output


def test_without_wait_a_rollout_says_how_it_started(cli, register):
    for n in range(3):
        register(f"roll-start-{n}", "roll-start")
    result = cli("send", "--group", "roll-start", "--type", "replay", "--batch-size", "1")
    assert result.exit_code == 0, result.output
    assert "sent to 3 agent(s) as a rollout: 1 sent so far, at most 1 at a time." in result.stdout

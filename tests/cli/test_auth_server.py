"""The CLI, the simulator and the example agent against a real server with auth on.

These need the server side of issue 10 (AGENT_REGISTRY_AUTH, agent tokens, signed frames).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from agent_registry.cli.main import main
from agent_registry.client import AgentClient
from agent_registry.security.tokens import Role
from harness.gunicorn import GunicornServer
from harness.process import ROOT

from ..sdk.conftest import wait_until
from ..secured import ISSUER, enrollment_token, operator_token, secured_env
from .conftest import CLI_SERVER_ENV

pytestmark = pytest.mark.e2e

CLI = [sys.executable, "-c", "from agent_registry.cli.main import main; main()"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("cli-auth")
    with GunicornServer(log_dir=directory, env=secured_env(directory, **CLI_SERVER_ENV)) as process:
        yield process


def run(server, *args: str, token: str | None = None):
    env = {"AGENT_REGISTRY_TOKEN": token, "AGENT_REGISTRY_URL": server.url}
    return CliRunner().invoke(main, list(args), env=env, prog_name="agent-registry")


@pytest.fixture
def enrolled_agent(server):
    agent = AgentClient(
        server.url,
        "cli-auth-1",
        "cli-auth",
        enrollment_token=enrollment_token(["cli-auth"]),
        handlers={"deep-trace": lambda command: "traced"},
    )
    agent.start()
    assert agent.wait_ready(5)
    yield agent
    agent.stop()


def test_without_a_token_a_read_is_one_sentence_and_exit_7(server):
    result = run(server, "agents", "list")

    assert result.exit_code == 7, result.output
    assert result.stderr.startswith("Error: ")
    assert result.stderr.endswith(
        " — pass a valid operator token with --token or AGENT_REGISTRY_TOKEN.\n"
    )
    assert result.stderr.count("\n") == 1


def test_watch_needs_an_operator_token_and_says_so_in_one_sentence(server, enrolled_agent):
    for token in (None, enrolled_agent.registrar.current.token):  # no token, an agent token
        result = run(server, "watch", token=token)
        assert result.exit_code == 7, result.output
        assert "Traceback" not in result.output


def test_an_expired_token_is_exit_7(server):
    expired = ISSUER.operator("tester", Role.VIEWER, None, -120)[0]
    result = run(server, "agents", "list", token=expired)

    assert result.exit_code == 7, result.output


def test_a_viewer_reads_but_may_not_send(server, enrolled_agent):
    viewer = operator_token("viewer")

    listed = run(server, "agents", "list", "--group", "cli-auth", "--json", token=viewer)
    sent = run(server, "send", "--agent", "cli-auth-1", "--type", "deep-trace", token=viewer)

    assert listed.exit_code == 0, listed.output
    assert [agent["id"] for agent in json.loads(listed.stdout)] == ["cli-auth-1"]
    assert sent.exit_code == 7, sent.output
    assert sent.stderr.endswith(" — use a token whose role and groups allow it.\n")


def test_an_operator_sends_and_the_enrolled_agent_acknowledges_the_signed_command(
    server, enrolled_agent
):
    token = operator_token("operator", ["cli-auth"])

    result = run(
        server, "send", "--agent", "cli-auth-1", "--type", "deep-trace", "--wait", "--json",
        "--timeout", "10", token=token,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    command = json.loads(result.stdout)
    assert command["deliveries"][0]["result"]["message"] == "traced"
    assert command["createdBy"] == "tester"
    shown = run(server, "commands", "show", command["commandId"], "--token", token)
    assert shown.exit_code == 0, shown.output


def test_an_operator_of_other_groups_may_not_send_to_this_one(server, enrolled_agent):
    result = run(
        server,
        "send",
        "--group",
        "cli-auth",
        "--type",
        "replay",
        token=operator_token("operator", ["elsewhere"]),
    )

    assert result.exit_code == 7, result.output


def test_the_simulator_enrolls_and_answers_a_group_command(server, tmp_path):
    log_path = tmp_path / "simulate.log"
    env = {**os.environ, "AGENT_REGISTRY_ENROLLMENT_TOKEN": enrollment_token(["simauth"])}
    with log_path.open("w") as log:
        simulator = subprocess.Popen(
            [*CLI, "--url", server.url, "simulate", "--agents", "3", "--group", "simauth"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        token = operator_token("operator")
        wait_until(lambda: "3 of 3 simulated agents" in log_path.read_text(), timeout=30, every=0.2)
        result = run(
            server, "send", "--group", "simauth", "--type", "deep-trace", "--wait",
            "--timeout", "10", token=token,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "All 3 target(s) acknowledged SUCCESS." in result.stdout
    finally:
        simulator.send_signal(signal.SIGINT)
        returncode = simulator.wait(20)
    output = log_path.read_text()
    assert returncode == 0, output
    assert "not running event" not in output


def test_the_simulator_without_an_enrollment_token_exits_7_before_starting(server):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_REGISTRY_")}
    result = subprocess.run(
        [*CLI, "--url", server.url, "simulate", "--agents", "2", "--group", "simnone"],
        capture_output=True, text=True, timeout=20, env=env,
    )  # fmt: skip

    assert result.returncode == 7, result.stderr
    assert result.stderr.endswith(
        " — pass a valid enrollment token with --enrollment-token or "
        "AGENT_REGISTRY_ENROLLMENT_TOKEN.\n"
    )


def test_the_example_agent_enrolls_from_the_environment(server, tmp_path):
    log_path = tmp_path / "agent.log"
    env = {
        **os.environ,
        "AGENT_REGISTRY_URL": server.url,
        "AGENT_REGISTRY_ENROLLMENT_TOKEN": enrollment_token(["demo"]),
    }
    with log_path.open("w") as log:
        agent = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "echo_agent.py")],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        wait_until(lambda: "event stream open" in log_path.read_text(), timeout=15, every=0.1)
        result = run(
            server, "send", "--agent", "echo-1", "--type", "deep-trace", "--wait",
            "--timeout", "10", "--json", token=operator_token(),
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["deliveries"][0]["result"]["message"] == (
            "tracing every route"
        )
    finally:
        agent.send_signal(signal.SIGTERM)
        returncode = agent.wait(10)
    assert returncode == 0, log_path.read_text()

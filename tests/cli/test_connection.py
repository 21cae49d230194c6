"""Where the server is: --url, AGENT_REGISTRY_URL, and one sentence when it is not there."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_the_url_comes_from_the_environment(cli, server, register):
    register("env-url-1", "env-url")
    from click.testing import CliRunner

    from agent_registry.cli.main import main

    result = CliRunner().invoke(
        main, ["agents", "show", "env-url-1", "--json"], env={"AGENT_REGISTRY_URL": server.url}
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["id"] == "env-url-1"


@pytest.mark.parametrize(
    "args",
    [
        ["agents", "list"],
        ["agents", "show", "x"],
        ["commands", "show", "x"],
        ["send", "--all", "--type", "replay", "--wait"],
        ["simulate", "--agents", "1"],
    ],
)
def test_an_unreachable_server_is_one_sentence_and_exit_1(cli, args):
    url = "http://127.0.0.1:1"  # nothing listens on port 1 (so `simulate` never execs here)

    result = cli(*args, url=url)

    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"Error: Cannot reach the Agent Registry at {url}: ")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_a_url_that_is_not_http_is_a_usage_error(cli):
    result = cli("agents", "list", url="localhost:8080")

    assert result.exit_code == 2
    assert "is not an http:// or https:// URL" in result.stderr


def test_simulate_with_a_group_the_server_refuses_exits_3_before_starting(server):
    # In a process of its own: a simulate that got past its checks would replace this one.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from agent_registry.cli.main import main; main()",
            "--url",
            server.url,
            "simulate",
            "--agents",
            "2",
            "--group",
            "no spaces allowed",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("Error: The request body is invalid: ")
    assert "group" in result.stderr

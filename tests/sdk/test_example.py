"""The example in docs/writing-an-agent.md is examples/echo_agent.py, and it really runs:
with plain threads and under gevent, against a real server, stopped by a signal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from agent_registry.cli.main import main
from harness.process import ROOT

from .conftest import wait_until

pytestmark = pytest.mark.e2e

EXAMPLE = ROOT / "examples" / "echo_agent.py"
UNDER_GEVENT = (
    "from gevent import monkey; monkey.patch_all()\n"
    "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"
)


def test_the_guide_shows_the_example_file_verbatim():
    guide = (ROOT / "docs" / "writing-an-agent.md").read_text()
    assert f"```python\n{EXAMPLE.read_text()}```" in guide


@pytest.mark.parametrize("mode", ["threads", "gevent"])
def test_the_example_agent_answers_commands_and_stops_on_sigterm(start_server, tmp_path, mode):
    server = start_server()
    command = (
        [sys.executable, str(EXAMPLE)]
        if mode == "threads"
        else [sys.executable, "-c", UNDER_GEVENT, str(EXAMPLE)]
    )
    log_path = tmp_path / "agent.log"
    with log_path.open("w") as log:
        agent = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "AGENT_REGISTRY_URL": server.url},
        )
    try:

        def connected() -> bool:
            result = CliRunner().invoke(
                main, ["--url", server.url, "agents", "list", "--group", "demo", "--json"]
            )
            return '"connected": true' in result.stdout

        wait_until(connected, timeout=15, every=0.1)

        def send(*args: str):
            return CliRunner().invoke(
                main,
                [
                    "--url",
                    server.url,
                    "send",
                    "--agent",
                    "echo-1",
                    *args,
                    "--wait",
                    "--timeout",
                    "10",
                ],
            )

        traced = send("--type", "deep-trace", "--payload", '{"routeId": "route-a"}', "--json")
        assert traced.exit_code == 0, traced.output
        assert json.loads(traced.stdout)["deliveries"][0]["result"]["message"] == (
            "tracing route-a"
        )
        updated = send("--type", "config-update")
        assert updated.exit_code == 4, updated.output
        assert "echo-1 has no settings to update" in updated.stdout
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            returncode = agent.wait(10)
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
    output = log_path.read_text()
    assert returncode == 0, output
    assert "agent echo-1: stopped" in output
    assert "Traceback" not in output

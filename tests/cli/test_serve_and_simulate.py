"""`serve` and `simulate` as a user runs them: separate processes, stopped by signals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import httpx
import pytest
from click.testing import CliRunner

from agent_registry.cli.main import main
from harness.gunicorn import GunicornServer
from harness.process import ROOT

from ..sdk.conftest import wait_until

pytestmark = pytest.mark.e2e

CLI = [sys.executable, "-c", "from agent_registry.cli.main import main; main()"]


def test_serve_runs_the_server_until_sigterm(tmp_path):
    """``serve`` reads its address from AGENT_REGISTRY_BIND (here a socket we pass)."""
    server = GunicornServer(log_dir=tmp_path, command=[*CLI, "serve"])
    with server:
        assert httpx.get(f"{server.url}/api/v1/agents").status_code == 200
        assert server.stop(signal.SIGTERM, timeout=15) == 0, server.log()


def run_simulator(url: str, log, *args: str) -> subprocess.Popen:
    """The simulator in its own process; its output goes to ``log`` (a pipe could fill)."""
    return subprocess.Popen(
        [*CLI, "--url", url, "simulate", *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
    )


def stop(simulator: subprocess.Popen, signum: int) -> int:
    simulator.send_signal(signum)
    try:
        return simulator.wait(20)
    finally:
        if simulator.poll() is None:
            simulator.kill()
            simulator.wait()


def test_simulate_200_agents_acknowledge_a_group_command(start_server, tmp_path):
    """The issue's acceptance test: 200 simulated agents, one group command, `send --wait`
    reports 200 acknowledged; Ctrl-C (SIGINT) stops the simulator cleanly."""
    server = start_server()
    log_path = tmp_path / "simulate.log"
    with log_path.open("w") as log:
        simulator = run_simulator(server.url, log, "--agents", "200", "--group", "sim200")
    try:
        with httpx.Client(base_url=f"{server.url}/api/v1", timeout=5) as http:

            def all_connected() -> bool:
                agents = http.get("/agents", params={"group": "sim200"}).json()
                return len(agents) == 200 and all(agent["connected"] for agent in agents)

            wait_until(all_connected, timeout=30, every=0.2)

        result = CliRunner().invoke(
            main,
            [
                "--url",
                server.url,
                "send",
                "--group",
                "sim200",
                "--type",
                "deep-trace",
                "--wait",
                "--timeout",
                "20",
            ],
        )
        assert result.exit_code == 0, result.output
        assert "200 target(s): 0 pending, 0 delivered, 200 acknowledged" in result.stdout
        assert "All 200 target(s) acknowledged SUCCESS." in result.stdout

    finally:
        returncode = stop(simulator, signal.SIGINT)
    err = log_path.read_text()
    assert returncode == 0, err
    assert "200 of 200 simulated agents in group 'sim200' connected" in err
    assert "Stopped. 200 command(s) handled, 0 failed." in err
    assert "Traceback" not in err


def test_simulate_fail_rate_and_ack_delay(start_server, tmp_path):
    server = start_server()
    log_path = tmp_path / "simulate.log"
    with log_path.open("w") as log:
        simulator = run_simulator(
            server.url,
            log,
            "--agents",
            "3",
            "--group",
            "simfail",
            "--fail-rate",
            "1",
            "--ack-delay",
            "0.2",
        )
    try:
        with httpx.Client(base_url=f"{server.url}/api/v1", timeout=5) as http:
            wait_until(
                lambda: (
                    [
                        a["connected"]
                        for a in http.get("/agents", params={"group": "simfail"}).json()
                    ]
                    == [True] * 3
                ),
                timeout=15,
                every=0.1,
            )
            started = time.monotonic()
            result = CliRunner().invoke(
                main,
                [
                    "--url",
                    server.url,
                    "send",
                    "--group",
                    "simfail",
                    "--type",
                    "replay",
                    "--wait",
                    "--json",
                ],
            )
            assert result.exit_code == 4, result.output
            assert time.monotonic() - started >= 0.2
            command = json.loads(result.stdout)
            assert command["summary"]["failed"] == 3
            assert command["deliveries"][0]["result"]["message"] == (
                "simulated failure (fail rate 1)"
            )
    finally:
        returncode = stop(simulator, signal.SIGTERM)
    err = log_path.read_text()
    assert returncode == 0, err
    assert "3 command(s) handled, 3 failed." in err

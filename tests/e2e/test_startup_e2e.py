"""Start-up refuses what would run wrongly, with a message that says why."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.server import ROOT, ServerProcess

pytestmark = pytest.mark.e2e


def run_gunicorn(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    server = ServerProcess(env)
    return subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", *args],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AGENT_REGISTRY_STALE_AFTER_SECONDS", "soon"),
        ("AGENT_REGISTRY_KEEPALIVE_SECONDS", "0"),
        ("AGENT_REGISTRY_MAX_BODY_BYTES", "100"),
        ("AGENT_REGISTRY_STORE", "postgres://db"),
    ],
)
def test_a_bad_setting_stops_the_server_naming_the_variable(variable, value):
    result = run_gunicorn({variable: value})
    assert result.returncode != 0
    assert variable in result.stderr


@pytest.mark.parametrize("how", ["env", "flag"])
def test_memory_store_refuses_more_than_one_worker(how):
    if how == "env":
        result = run_gunicorn({"WEB_CONCURRENCY": "2"})
    else:
        result = run_gunicorn({}, "--workers", "2")
    assert result.returncode != 0
    assert "memory store" in result.stderr
    assert "AGENT_REGISTRY_STORE=redis://" in result.stderr


def test_memory_store_refuses_a_worker_added_with_ttin(start_server):
    server = start_server()
    assert server.process is not None
    server.signal(signal.SIGTTIN)
    time.sleep(1.5)
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1, server.log()
    assert "refusing to add a worker" in server.log()

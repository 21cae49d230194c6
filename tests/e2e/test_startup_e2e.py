"""Start-up refuses what would run wrongly, with a message that says why."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from harness.gunicorn import server_environment
from harness.process import ROOT
from harness.sockets import listening_socket
from harness.wait import holds_for

pytestmark = pytest.mark.e2e


def run_gunicorn(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run gunicorn to its end (these refuse to start) on a socket of our own."""
    with listening_socket() as sock:
        return subprocess.run(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", *args],
            cwd=ROOT,
            env=server_environment(f"fd://{sock.fileno()}", env=env),
            pass_fds=(sock.fileno(),),
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


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"AGENT_REGISTRY_AUTH": "on"}, "AGENT_REGISTRY_TOKEN_SECRET"),
        (
            {
                "AGENT_REGISTRY_AUTH": "on",
                "AGENT_REGISTRY_TOKEN_SECRET": "x" * 32,
                "AGENT_REGISTRY_STORE": "redis://127.0.0.1:1/0",
            },
            "AGENT_REGISTRY_SIGNING_KEY_FILE",
        ),
        (
            {"AGENT_REGISTRY_SIGNING_KEY_FILE": "/nonexistent.pem"},
            "AGENT_REGISTRY_SIGNING_KEY_FILE",
        ),
    ],
    ids=["auth without a secret", "redis auth without a key file", "a missing key file"],
)
def test_security_settings_that_cannot_work_stop_the_server(env, named):
    result = run_gunicorn(env)
    assert result.returncode != 0
    assert named in result.stderr


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
    server.signal(signal.SIGTTIN)
    # gunicorn would spawn the added worker within its one-second loop.
    assert holds_for(lambda: len(server.worker_pids()) == 1, 2.0), server.log()
    assert server.exited() is False

"""With auth off, a server reachable from other hosts says so once, at start."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from agent_registry.server import gunicorn_settings


class RecordingLog:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, message: str, *args: object) -> None:
        self.warnings.append(message % args)

    def info(self, message: str, *args: object) -> None:
        pass


def start(monkeypatch: pytest.MonkeyPatch, bind: list[str], **env: str) -> list[str]:
    monkeypatch.setenv("AGENT_REGISTRY_METRICS", "off")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    log = RecordingLog()
    gunicorn_settings.on_starting(SimpleNamespace(cfg=SimpleNamespace(bind=bind), log=log))
    return log.warnings


@pytest.mark.parametrize(
    "bind", [["0.0.0.0:8080"], ["127.0.0.1:8080", "10.1.2.3:8080"], ["[::]:80"]]
)
def test_auth_off_on_a_reachable_address_warns_once(monkeypatch, bind):
    warnings = start(monkeypatch, bind)
    assert len(warnings) == 1
    assert "anyone who can reach the port" in warnings[0]


@pytest.mark.parametrize(
    "bind", [["127.0.0.1:8080"], ["localhost:8080"], ["[::1]:8080"], ["unix:/tmp/ar.sock"]]
)
def test_a_loopback_or_unix_socket_bind_does_not_warn(monkeypatch, bind):
    assert start(monkeypatch, bind) == []


def test_auth_on_does_not_warn(monkeypatch):
    warnings = start(
        monkeypatch,
        ["0.0.0.0:8080"],
        AGENT_REGISTRY_AUTH="on",
        AGENT_REGISTRY_TOKEN_SECRET="s" * 32,
    )
    assert warnings == []


def test_checking_the_security_settings_does_not_import_ssl(tmp_path):
    """PyJWT imports ssl; imported in the gunicorn master, it reached every worker before
    gevent could patch it (a MonkeyPatchWarning in every server log)."""
    code = (
        "import sys, logging\n"
        "from types import SimpleNamespace\n"
        "from agent_registry.server import gunicorn_settings as g\n"
        "g.on_starting(SimpleNamespace(cfg=SimpleNamespace(bind=['127.0.0.1:1']),"
        " log=logging.getLogger()))\n"
        "print(sorted(name for name in ('ssl', 'jwt') if name in sys.modules))\n"
    )
    env = {
        **os.environ,
        "AGENT_REGISTRY_AUTH": "on",
        "AGENT_REGISTRY_TOKEN_SECRET": "s" * 32,
        "AGENT_REGISTRY_METRICS": "off",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"

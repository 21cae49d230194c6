"""The listen backlog (issue "Hostile input and hard days", row 10): sized for a reconnect
storm, and one line at start when the kernel caps it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent_registry.server import gunicorn_settings


def test_row10_the_backlog_holds_a_whole_worker_reconnecting_at_once() -> None:
    """5 000 agents reconnecting at once overflowed gunicorn's default backlog of 2 048."""
    assert gunicorn_settings.backlog == gunicorn_settings.worker_connections == 20_000


@pytest.fixture
def somaxconn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "somaxconn"
    monkeypatch.setattr(gunicorn_settings, "SOMAXCONN", path)
    return path


def report(caplog: pytest.LogCaptureFixture, addresses: list[object]) -> list[str]:
    log = logging.getLogger("test.backlog")
    with caplog.at_level(logging.INFO, logger="test.backlog"):
        gunicorn_settings._report_backlog_cap(log, 20_000, addresses)
    return [record.getMessage() for record in caplog.records]


def test_a_backlog_capped_by_somaxconn_is_said_once(somaxconn: Path, caplog) -> None:
    somaxconn.write_text("4096\n")
    (line,) = report(caplog, [("0.0.0.0", 8080)])
    assert "20000" in line and "net.core.somaxconn=4096" in line


def test_nothing_is_said_when_the_kernel_allows_the_backlog(somaxconn: Path, caplog) -> None:
    somaxconn.write_text("65535\n")
    assert report(caplog, [("0.0.0.0", 8080)]) == []


def test_nothing_is_said_for_a_socket_handed_over(somaxconn: Path, caplog) -> None:
    """An ``fd://`` socket already listens: gunicorn keeps its creator's backlog."""
    somaxconn.write_text("128\n")
    assert report(caplog, [7]) == []


def test_nothing_is_said_without_a_somaxconn_to_read(somaxconn: Path, caplog) -> None:
    assert report(caplog, [("0.0.0.0", 8080)]) == []

"""A Redis outage, as the runtime's StoreOutage sees it: every store operation, sweep, bus
and presence failure is counted there, and the outage logs two lines, not one per sweep."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import redis

from agent_registry.config import load_settings
from agent_registry.errors import StoreUnavailable
from agent_registry.redis import client as redis_client_module
from agent_registry.server.runtime import Runtime
from harness.clock import FakeClock
from harness.redis_server import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
def runtime_on(
    redis_server: RedisServer, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Runtime]:
    """A runtime on the session's Redis; its client's connections are closed afterwards."""
    clients: list[redis.Redis] = []
    connect = redis_client_module.connect

    def recording_connect(url: str, max_connections: int = 64) -> redis.Redis:
        clients.append(connect(url, max_connections))
        return clients[-1]

    monkeypatch.setattr(redis_client_module, "connect", recording_connect)
    redis_server.flush()
    runtime = Runtime(load_settings({"AGENT_REGISTRY_STORE": redis_server.url}, {}), clock)
    yield runtime
    if redis_server.exited():
        redis_server.start()
    runtime.stop()
    for client in clients:
        client.connection_pool.disconnect()


def outage_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "agent_registry.outage"]


def warnings_elsewhere(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("agent_")
    ]


def test_an_outage_met_by_sweeps_and_requests_logs_one_warning_then_one_info(
    runtime_on: Runtime,
    redis_server: RedisServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    runtime = runtime_on
    caplog.set_level(logging.DEBUG, logger="agent_registry")
    runtime.registry.sweep()

    redis_server.stop()
    for _ in range(3):
        for job in runtime.sweeper.jobs():
            job()
        clock.advance(1.0)
    with pytest.raises(StoreUnavailable):
        runtime.registry.heartbeat("a1")

    [warning] = outage_records(caplog)
    assert warning.levelno == logging.WARNING
    assert warnings_elsewhere(caplog) == [warning]
    assert runtime.outage.down
    assert runtime.outage.errors_total == 7

    redis_server.start()
    caplog.clear()
    for job in runtime.sweeper.jobs():
        job()

    [info] = outage_records(caplog)
    assert info.levelno == logging.INFO
    assert info.failed_operations == 7  # type: ignore[attr-defined]
    assert info.outage_seconds == 3.0  # type: ignore[attr-defined]
    assert not runtime.outage.down
    assert runtime.outage.errors_total == 7

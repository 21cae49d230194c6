"""StoreOutage: an outage logs one WARNING when it starts and one INFO when it ends."""

from __future__ import annotations

import logging

import pytest

from agent_registry.core.models import Outage
from agent_registry.outage import StoreOutage
from harness.clock import FakeClock

LOGGER = "agent_registry.outage"


@pytest.fixture
def outage(clock: FakeClock) -> StoreOutage:
    return StoreOutage(clock)


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == LOGGER]


def test_the_first_failure_warns_once_and_later_failures_are_only_counted(
    outage: StoreOutage, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)

    outage.failed("lifecycle sweep", ConnectionError("refused"))
    for _ in range(9):
        clock.advance(0.5)
        outage.failed("commands sweep", ConnectionError("refused"))

    [warning] = records(caplog)
    assert warning.levelno == logging.WARNING
    assert warning.operation == "lifecycle sweep"  # type: ignore[attr-defined]
    assert outage.down is True
    assert outage.failed_in_outage == 10
    assert outage.errors_total == 10


def test_recovery_logs_one_info_with_the_duration_and_the_failures(
    outage: StoreOutage, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    outage.failed("lifecycle sweep", ConnectionError("refused"))
    clock.advance(4.0)
    outage.failed("commands sweep", ConnectionError("refused"))
    clock.advance(8.5)
    caplog.clear()

    outage.succeeded()
    outage.succeeded()

    [info] = records(caplog)
    assert info.levelno == logging.INFO
    assert info.outage_seconds == 12.5  # type: ignore[attr-defined]
    assert info.failed_operations == 2  # type: ignore[attr-defined]
    assert outage.down is False


def test_successes_without_an_outage_log_nothing(
    outage: StoreOutage, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)

    outage.succeeded()

    assert records(caplog) == []
    assert outage.errors_total == 0


def test_a_second_outage_warns_again_and_the_total_keeps_counting(
    outage: StoreOutage, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    outage.failed("heartbeat", ConnectionError("refused"))
    outage.failed("heartbeat", ConnectionError("refused"))
    clock.advance(1.0)
    outage.succeeded()
    clock.advance(60.0)

    outage.failed("heartbeat", ConnectionError("refused"))
    clock.advance(2.0)
    outage.succeeded()

    levels = [record.levelno for record in records(caplog)]
    assert levels == [logging.WARNING, logging.INFO, logging.WARNING, logging.INFO]
    assert records(caplog)[-1].failed_operations == 1  # type: ignore[attr-defined]
    assert records(caplog)[-1].outage_seconds == 2.0  # type: ignore[attr-defined]
    assert outage.errors_total == 3


def test_it_tells_the_lifecycle_sweep_which_gaps_it_already_logged(
    outage: StoreOutage, clock: FakeClock
) -> None:
    """A gap in the sweeps that a logged store outage explains gets no second WARNING."""
    start = clock.now
    assert outage.reported_during(Outage(start - 10, start)) is False  # never down
    outage.failed("lifecycle sweep", ConnectionError("refused"))
    assert outage.reported_during(Outage(start - 1, start + 5)) is True  # down now
    clock.advance(8)
    outage.succeeded()
    assert outage.reported_during(Outage(start - 1, start + 8)) is True
    # A later gap (a paused server, Redis fine) was not logged as a store outage.
    assert outage.reported_during(Outage(start + 20, start + 30)) is False
    lengths: list[float] = []
    outage.on_sweep_gap = lengths.append
    outage.found(Outage(start + 20, start + 30))
    assert lengths == [10]

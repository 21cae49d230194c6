"""What APScheduler may log from the sweeps' scheduler."""

from __future__ import annotations

import logging

import pytest

import agent_registry.server.scheduler  # noqa: F401  (installs the filter)

SCHEDULER = logging.getLogger("apscheduler.scheduler")


def test_a_run_skipped_while_the_previous_one_runs_is_not_logged(caplog: pytest.LogCaptureFixture):
    """Regression (issue 15, row 12): with Redis paused every sweep outlasts its interval, and
    APScheduler warned twice a second per worker for the whole outage, where the docs (and
    StoreOutage) promise one warning per outage."""
    with caplog.at_level(logging.WARNING, logger="apscheduler.scheduler"):
        SCHEDULER.warning(
            'Execution of job "%s" skipped: maximum number of running instances reached (%d)',
            "sweep_lifecycle",
            1,
        )
        SCHEDULER.warning('Run time of job "%s" was missed by %s', "sweep_lifecycle", "0:00:02")
    assert [record.getMessage() for record in caplog.records] == [
        'Run time of job "sweep_lifecycle" was missed by 0:00:02'
    ]

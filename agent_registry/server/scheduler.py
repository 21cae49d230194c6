"""APScheduler wiring: the sweeps run in the worker, every ``SWEEP_INTERVAL_SECONDS``.

Only wiring: tests and benchmarks call the sweep functions directly with a clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC
from time import perf_counter

from apscheduler.schedulers.gevent import GeventScheduler

from ..core.commands import Commands
from ..core.registry import Registry
from ..errors import StoreUnavailable

log = logging.getLogger(__name__)


class _OverlapsNotLogged(logging.Filter):
    """Drop APScheduler's warning that a run was skipped because the previous one still runs.

    With ``max_instances=1`` that is the design: a sweep longer than its interval is simply
    followed by the next one. It is also what every sweep does while Redis does not answer
    (each waits one reply timeout, 2 s, for a 1 s interval), so the warning came twice a
    second per worker for the whole outage, which StoreOutage already logs once. A slow
    sweep shows in ``agent_registry_sweep_duration_seconds`` (alert AgentRegistrySweepSlow).
    """

    SKIPPED = 'Execution of job "%s" skipped: maximum number of running instances'

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(self.SKIPPED))


# APScheduler's scheduler logs there (logging configuration leaves its filters alone).
logging.getLogger("apscheduler.scheduler").addFilter(_OverlapsNotLogged())


class Sweeper:
    def __init__(
        self,
        registry: Registry,
        commands: Commands,
        interval: float,
        timer: Callable[[float], None] | None = None,
    ) -> None:
        self._registry = registry
        self._commands = commands
        self._interval = interval
        # Told how many seconds each sweep run took (metrics), failed runs included.
        self._timer = timer
        self._scheduler: GeventScheduler | None = None

    def start(self) -> None:
        if self._scheduler is not None:
            return
        scheduler = GeventScheduler(timezone=UTC)
        for job in self.jobs():
            scheduler.add_job(
                job,
                "interval",
                seconds=self._interval,
                id=job.__name__,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=max(1, int(self._interval) + 1),
            )
        scheduler.start()
        self._scheduler = scheduler

    def jobs(self) -> list[Callable[[], None]]:
        """What the scheduler runs: each sweep, guarded so that a failure waits for the next."""
        return [
            _guarded("lifecycle", self.sweep_lifecycle),
            _guarded("commands", self.sweep_commands),
        ]

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    def sweep_lifecycle(self) -> None:
        started = perf_counter()
        try:
            self._registry.sweep()
        finally:
            if self._timer is not None:
                self._timer(perf_counter() - started)

    def sweep_commands(self) -> None:
        started = perf_counter()
        try:
            self._commands.expire()
            # After the expiries (each of which advances its rollout at once): the rollouts
            # still due, such as one whose process died before advancing it.
            self._commands.rollouts.sweep()
            self._commands.purge()
        finally:
            if self._timer is not None:
                self._timer(perf_counter() - started)


def _guarded(name: str, job: Callable[[], None]) -> Callable[[], None]:
    """A failing sweep is retried at the next interval; an unexpected error logs a traceback."""

    def run() -> None:
        try:
            job()
        except StoreUnavailable:
            # The store reported the outage to the runtime's StoreOutage, which logs it once
            # when it starts and once when it ends; not a line per sweep.
            log.debug("%s sweep skipped: store unavailable; retrying at the next interval", name)
        except Exception:
            log.exception("%s sweep failed; retrying at the next interval", name)

    run.__name__ = f"sweep_{name}"
    return run

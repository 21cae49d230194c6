"""One place that knows whether the shared store is down, so an outage logs two lines.

Every caller that meets an unreachable store (a request, a sweep, the bus subscriber,
presence) reports it here instead of logging it: the first failure logs one ``WARNING``,
the failures after it are only counted, and the first success after them logs one
``INFO`` saying how long the outage lasted and how many operations failed meanwhile.
``errors_total`` counts every failure since start (``agent_registry_store_errors_total``).

One tracker per runtime (one per worker process): each worker logs its own two lines.
It is also the lifecycle sweep's ``OutageWatch`` (core/ports.py): a gap in the sweeps that a
store outage explains is not warned about a second time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .clock import Clock, system_clock
from .core.models import Outage

log = logging.getLogger(__name__)


def _nothing() -> None:
    return None


def _ignore(_: float) -> None:
    return None


class StoreOutage:
    def __init__(self, clock: Clock = system_clock) -> None:
        self._clock = clock
        self.down = False
        self.since: float | None = None  # when the current outage began
        self.failed_in_outage = 0
        self.errors_total = 0  # every failure reported since start; never goes down
        self.on_failure: Callable[[], None] = _nothing  # a counter's inc (the metrics)
        # Told the length of each gap in the sweeps this process found (the metrics).
        self.on_sweep_gap: Callable[[float], None] = _ignore
        # (start, end) of the last outage that ended, for ``reported_during``.
        self.last: tuple[float, float] | None = None

    def failed(self, operation: str, error: BaseException | str) -> None:
        """An operation could not reach the store."""
        self.errors_total += 1
        self.failed_in_outage += 1
        self.on_failure()
        if self.down:
            return
        self.down = True
        self.since = self._clock()
        log.warning(
            "store unavailable: %s failed (%s); further failures are counted, not logged, "
            "until it answers again",
            operation,
            error,
            extra={"operation": operation, "error": str(error)},
        )

    def succeeded(self) -> None:
        """An operation reached the store: ends the outage, if there was one."""
        if not self.down:
            return
        now = self._clock()
        lasted = now - (self.since or 0.0)
        failed = self.failed_in_outage
        self.last = (self.since or now, now)
        self.down = False
        self.since = None
        self.failed_in_outage = 0
        log.info(
            "store available again after %.1f s; %d operation(s) failed meanwhile",
            lasted,
            failed,
            extra={"outage_seconds": round(lasted, 3), "failed_operations": failed},
        )

    def reported_during(self, outage: Outage) -> bool:
        """Whether this tracker logged the store unreachable at some time during ``outage``."""
        if self.down:
            return True
        return self.last is not None and self.last[1] >= outage.started

    def found(self, outage: Outage) -> None:
        self.on_sweep_gap(outage.lasted)

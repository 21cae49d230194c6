"""Rollouts (API.md § Fleet operations): a group or fleet command sent a window at a time.

The rules, apart from any store: what a request asks for (``RolloutRequest``), what it
comes to for a number of targets (``RolloutPlan``), how many targets may be sent now and
when the failure limit stops the rollout. Both stores apply these rules inside one atomic
step (the memory store by calling them, the Redis store in its claim script), and the
driver (``rollout_driver.py``) calls that step whenever a delivery becomes final.

The window slides, as SSM's MaxConcurrency and Salt's ``--batch``: at most ``window``
targets are in flight (sent, not final); each one that becomes final frees its slot, and
with a batch interval the slot is used again only that many seconds after the freeing
was noticed (Salt's ``--batch-wait``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from ..errors import ValidationFailed


@dataclass(frozen=True, slots=True)
class Percent:
    """A share of the targets, 0-100, kept exact (``12.5%`` of 8 is 1, not 0.999...)."""

    value: Fraction

    def of(self, targets: int) -> Fraction:
        return self.value * targets / 100

    def __str__(self) -> str:
        return f"{float(self.value):g}%"


Amount = int | Percent


@dataclass(frozen=True, slots=True)
class RolloutRequest:
    """What the send body asked for: counts or percentages of the targets."""

    batch_size: Amount
    max_failures: Amount | None = None  # None: no limit
    batch_interval: float = 0.0

    def plan(self, targets: int, expiry: float) -> RolloutPlan:
        """Resolve the percentages against the number of targets: ``batchSize`` rounds up
        (at least 1), ``maxFailures`` rounds down (``5%`` of 10 targets tolerates none)."""
        return RolloutPlan(
            window=_batch_size(self.batch_size, targets),
            max_failures=_max_failures(self.max_failures, targets),
            interval=self.batch_interval,
            expiry=expiry,
        )


def _batch_size(amount: Amount, targets: int) -> int:
    if isinstance(amount, Percent):
        return max(1, math.ceil(amount.of(targets)))
    return amount


def _max_failures(amount: Amount | None, targets: int) -> int | None:
    if isinstance(amount, Percent):
        return math.floor(amount.of(targets))
    return amount


@dataclass(frozen=True, slots=True)
class RolloutPlan:
    """A rollout as the store keeps it: plain numbers, resolved once at creation."""

    window: int  # at most this many targets in flight
    max_failures: int | None  # more FAILED + EXPIRED than this stops it; None: never
    interval: float  # seconds a freed slot waits before the next target is sent
    expiry: float  # each delivery expires this long after its own sentAt

    def exceeded(self, failures: int) -> bool:
        """Whether this many FAILED or EXPIRED deliveries stop the rollout."""
        return self.max_failures is not None and failures > self.max_failures

    def room(
        self, now: float, in_flight: int, occupied: int, cooling: list[float]
    ) -> tuple[int, list[float]]:
        """How many targets may be sent at ``now``, and the freed slots still waiting out
        the batch interval (when each may be used, earliest first).

        ``occupied`` is how many were in flight right after the previous claim, so
        ``occupied - in_flight`` slots were freed since: with an interval each one waits
        from now; ``cooling`` are those freed earlier.
        """
        freed = max(0, occupied - in_flight)
        waiting = sorted([*cooling, *[now + self.interval] * freed] if self.interval else [])
        waiting = [at for at in waiting if at > now]
        return max(0, self.window - in_flight - len(waiting)), waiting


def refuse_single_target() -> ValidationFailed:
    """The error for a rollout on a single-agent command (API.md: 400)."""
    rule = "A rollout applies to group and all commands; a single agent is sent at once."
    return ValidationFailed(rule, {"rollout": [rule]})

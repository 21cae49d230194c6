"""Driving rollouts: each claim sends the next targets a rollout's window has room for.

Whoever sees a delivery of a rollout become final (an ack, the expiry sweep, a cancel, the
deletion of its agent) calls ``advance`` at once; the sweep (``sweep``) advances every
rollout the store says is due, so that one whose process died between a delivery becoming
final and the claim after it, or whose freed slot waited out its batch interval, goes on
in whichever process sweeps next. The claim is one atomic store step: with several
processes, each target is sent by one of them, and never more than the window at a time.
"""

from __future__ import annotations

import logging

from ..clock import Clock
from .models import RolloutStep
from .ports import Bus, CommandStore, FleetObserver

log = logging.getLogger(__name__)


class RolloutDriver:
    def __init__(
        self,
        store: CommandStore,
        bus: Bus,
        clock: Clock,
        retention: float,
        observer: FleetObserver,
    ) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._retention = retention
        self._observer = observer

    def advance(self, command_id: str) -> RolloutStep:
        """Claim the rollout's next step and carry it out: publish the targets it sent, or
        report the unsent ones it CANCELLED when the failure limit stopped it."""
        now = self._clock()
        step = self._store.claim(command_id, now, now + self._retention)
        command = step.command
        if command is None or command.rollout is None:
            return step
        extra = {"command_id": command_id}
        if step.cancelled:
            for delivery in step.cancelled:
                self._observer.finished(command, delivery)
            log.warning(
                "command %s: rollout STOPPED, more than %s deliveries FAILED or EXPIRED; "
                "%d unsent target(s) CANCELLED",
                command_id,
                command.rollout.max_failures,
                len(step.cancelled),
                extra=extra,
            )
        if step.sent and step.sent_at is not None:
            log.info(
                "command %s: rollout sent to %d more target(s)%s",
                command_id,
                len(step.sent),
                "" if command.expires_at is None else ", the last of them",
                extra=extra,
            )
            self._bus.publish(command.as_sent(step.sent_at), step.sent, step.sent_at)
        return step

    def sweep(self, now: float | None = None, batch: int = 1000) -> int:
        """Advance every rollout due at ``now``; how many targets were sent."""
        now = self._clock() if now is None else now
        sent = 0
        previous: list[str] = []
        while True:
            due = self._store.due_rollouts(now, batch)
            # A claim makes its rollout due later or not at all; the same batch twice means
            # the store made no progress: stop rather than spin.
            if not due or due == previous:
                return sent
            previous = due
            for command_id in due:
                sent += len(self.advance(command_id).sent)
            if len(due) < batch:
                return sent

"""Commands: fan-out to targets, delivery tracking, acknowledgement, expiry, retention."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, assert_never

from ..clock import Clock
from ..errors import (
    AgentNotFound,
    AlreadyAcknowledged,
    CommandCancelled,
    CommandExpired,
    CommandNotFound,
    NoLiveTargets,
)
from .acknowledgement import AckVerdict
from .ids import CommandIds, created_millis
from .models import (
    AckResult,
    AckStatus,
    Command,
    CommandSnapshot,
    CommandType,
    Delivery,
    DeliveryStatus,
    Target,
    TargetKind,
)
from .ports import AgentStore, Bus, CommandStore, FleetObserver, NoObserver
from .rollout import RolloutRequest, refuse_single_target
from .rollout_driver import RolloutDriver

log = logging.getLogger(__name__)

# A compare-and-set that keeps losing means another process keeps changing the same
# delivery; a handful of rounds is plenty for the few writers one delivery can have.
_CAS_ROUNDS = 8


@dataclass(frozen=True, slots=True)
class CommandTiming:
    expiry: float
    retention: float


class Commands:
    def __init__(
        self,
        agents: AgentStore,
        store: CommandStore,
        bus: Bus,
        clock: Clock,
        timing: CommandTiming,
        observer: FleetObserver | None = None,
    ) -> None:
        self.store = store
        self._observer: FleetObserver = observer or NoObserver()
        self._agents = agents
        self._bus = bus
        self._clock = clock
        self._timing = timing
        self._ids = CommandIds()
        self.rollouts = RolloutDriver(store, bus, clock, timing.retention, self._observer)

    def send(
        self,
        target: Target,
        command_type: CommandType,
        payload: dict[str, Any],
        created_by: str | None = None,
        deliver_on_connect: bool = False,
        rollout: RolloutRequest | None = None,
    ) -> CommandSnapshot:
        """Create one command for all targets and push it to the open streams.

        ``created_by`` is who sent it (the operator token's subject, with auth on). With
        ``deliver_on_connect``, a target whose stream opens later, while its delivery is
        still PENDING and unexpired, gets it then (``pending_on_connect``). With a
        ``rollout`` (group and all only), the targets are chosen now and sent a window
        at a time (``RolloutDriver``); the first window is sent before this returns.
        """
        if rollout is not None and target.kind is TargetKind.AGENT:
            raise refuse_single_target()
        agent_ids = self._resolve(target)
        now = self._clock()
        plan = rollout.plan(len(agent_ids), self._timing.expiry) if rollout else None
        command = Command(
            id=self._ids.new(now),
            type=command_type,
            payload=payload,
            target=target,
            created_at=now,
            expires_at=None if plan else now + self._timing.expiry,
            created_by=created_by,
            deliver_on_connect=deliver_on_connect,
            rollout=plan,
        )
        deliveries = [Delivery(agent_id) for agent_id in agent_ids]
        self.store.add(command, deliveries)
        log.info(
            "command %s (%s) sent to %s %s by %s: %d target(s)%s",
            command.id,
            command.type,
            target.kind,
            target.value or "*",
            created_by or "anonymous (auth off)",
            len(agent_ids),
            f", a rollout of {plan.window} at a time" if plan else "",
            extra=_ids(command.id, target.value if target.kind is TargetKind.AGENT else None),
        )
        self._observer.command_sent(command, agent_ids)
        if plan is None:
            self._bus.publish(command, agent_ids)
            return CommandSnapshot(command, deliveries)
        self.rollouts.advance(command.id)
        return self.get(command.id)

    def _resolve(self, target: Target) -> list[str]:
        if target.kind is TargetKind.AGENT:
            assert target.value is not None
            if self._agents.get(target.value) is None:
                raise AgentNotFound(f"Agent '{target.value}' is not registered.")
            return [target.value]
        agent_ids = self._agents.live_ids(target.value)
        if not agent_ids:
            where = f"in group '{target.value}'" if target.value else "in the registry"
            raise NoLiveTargets(f"No LIVE agents {where}; nothing was sent.")
        return agent_ids

    def get(self, command_id: str) -> CommandSnapshot:
        snapshot = self.store.get(command_id)
        if snapshot is None:
            raise CommandNotFound(f"Command '{command_id}' does not exist (or was purged).")
        return snapshot

    def for_agent(
        self, agent_id: str, statuses: Collection[DeliveryStatus] | None = None
    ) -> list[tuple[Command, Delivery]]:
        if self._agents.get(agent_id) is None:
            raise AgentNotFound(f"Agent '{agent_id}' is not registered.")
        return self.store.for_agent(agent_id, statuses)

    def pending_on_connect(self, agent_id: str) -> list[Command]:
        """Commands to write to the agent's stream as it opens, oldest first: those sent
        with ``deliver_on_connect`` whose delivery to it is still PENDING and unexpired."""
        now = self._clock()
        found = self.store.for_agent(
            agent_id, (DeliveryStatus.PENDING,), since=now - self._timing.expiry
        )
        owed = []
        for command, delivery in reversed(found):
            deadline, sent_at = command.deadline(delivery), command.sent_at(delivery)
            # A rollout's target not sent yet is not owed anything: its turn has not come.
            if (
                command.deliver_on_connect
                and sent_at is not None
                and (deadline is None or now < deadline)
            ):
                owed.append(command.as_sent(sent_at))
        return owed

    def mark_delivered(self, agent_id: str, command_ids: Iterable[str]) -> None:
        """The commands' bytes were written to the agent's stream: PENDING -> DELIVERED."""
        for command_id in command_ids:
            self.mark_delivered_to(command_id, [agent_id])

    def mark_delivered_to(self, command_id: str, agent_ids: Sequence[str]) -> int:
        """One command reached these agents' streams; recorded in one store call."""
        at = self._clock()
        delivered = self.store.mark_delivered(command_id, agent_ids, at)
        log.debug(
            "command %s delivered to %d agent(s)", command_id, delivered, extra=_ids(command_id)
        )
        if delivered:
            self._observer.delivered(command_id, created_millis(command_id), delivered, at)
        return delivered

    def acknowledge(self, agent_id: str, command_id: str, result: AckResult) -> Delivery:
        """Record the agent's result; a repeat with the same status changes nothing."""
        return self.acknowledge_command(agent_id, command_id, result)[1]

    def acknowledge_command(
        self, agent_id: str, command_id: str, result: AckResult
    ) -> tuple[Command, Delivery]:
        """``acknowledge``, answering the command too (what the delivery's JSON needs).

        Judged and recorded by the store in one step (``acknowledgement.py``): against
        Redis, one round trip, shared with the acks that arrive meanwhile."""
        now = self._clock()
        outcome = self.store.acknowledge(
            command_id, agent_id, result, now, now + self._timing.retention
        )
        if outcome is None:
            # A delivery exists only for a registered agent: ask about the agent only when
            # there is none, to name the right 404 (one store round trip saved per ack).
            if self._agents.get(agent_id) is None:
                raise AgentNotFound(f"Agent '{agent_id}' is not registered.")
            raise CommandNotFound(
                f"Command '{command_id}' does not exist or was not sent to '{agent_id}'."
            )
        command, delivery = outcome.command, outcome.delivery
        match outcome.verdict:
            case AckVerdict.REPEATED:
                return command, delivery
            case AckVerdict.ALREADY_FINAL:
                raise AlreadyAcknowledged(
                    f"Command '{command_id}' was already acknowledged as {delivery.status} "
                    f"by '{agent_id}'."
                )
            case AckVerdict.CANCELLED:
                raise CommandCancelled(
                    f"Command '{command_id}' was cancelled for '{agent_id}'; the ack was not "
                    "recorded."
                )
            case AckVerdict.EXPIRED:
                raise CommandExpired(
                    f"Command '{command_id}' expired for '{agent_id}' before it was acknowledged."
                )
            case AckVerdict.RECORDED:
                pass
            case unknown:
                assert_never(unknown)
        # Successes are routine (one per agent per command); failures need eyes.
        log.log(
            logging.DEBUG if result.status is AckStatus.SUCCESS else logging.WARNING,
            "command %s acknowledged by agent %s: %s%s",
            command_id,
            agent_id,
            delivery.status,
            f" ({result.message})" if result.message else "",
            extra=_ids(command_id, agent_id),
        )
        self._observer.finished(command, delivery)
        if command.rollout is not None:
            self.rollouts.advance(command_id)
        return command, delivery

    def cancel(self, command_id: str, cancelled_by: str | None = None) -> CommandSnapshot:
        """Every delivery that is not final becomes CANCELLED, and each of those targets
        whose stream is open gets the ``cancel`` event. A command whose deliveries are all
        final is answered unchanged.

        Each delivery is cancelled by one compare-and-set, so with several processes (or
        a concurrent ack or expiry) each one is cancelled, counted and announced once.
        """
        snapshot = self.get(command_id)
        open_ids = [d.agent_id for d in snapshot.deliveries if not d.status.is_final]
        if not open_ids:
            return snapshot
        command = snapshot.command
        now = self._clock()
        cancelled = self.store.cancel_deliveries(
            command_id, open_ids, now + self._timing.retention, halt=True
        )
        if not cancelled:
            return self.store.get(command_id) or snapshot
        for delivery in cancelled:
            self._observer.finished(command, delivery)
        log.info(
            "command %s cancelled by %s: %d delivery(ies) CANCELLED, %d of them never delivered",
            command_id,
            cancelled_by or "anonymous (auth off)",
            len(cancelled),
            sum(1 for delivery in cancelled if delivery.delivered_at is None),
            extra=_ids(command_id, cancelled[0].agent_id if len(cancelled) == 1 else None),
        )
        # A rollout's targets not sent yet never saw the command: no cancel event for them.
        sent = [d.agent_id for d in cancelled if command.sent_at(d) is not None]
        if sent:
            self._bus.cancel(command_id, sent)
        return self.store.get(command_id) or _with(snapshot, cancelled)

    def cancel_for_agent(self, agent_id: str) -> int:
        """Cancel the agent's deliveries that are not final (it was deleted): how many."""
        retain_until = self._clock() + self._timing.retention
        cancelled = 0
        open_statuses = [status for status in DeliveryStatus if not status.is_final]
        for command, _ in self.store.for_agent(agent_id, open_statuses):
            for final in self.store.cancel_deliveries(command.id, [agent_id], retain_until):
                self._observer.finished(command, final)
                cancelled += 1
                log.info(
                    "command %s cancelled for agent %s: the agent was deleted",
                    command.id,
                    agent_id,
                    extra=_ids(command.id, agent_id),
                )
                if command.rollout is not None:
                    self.rollouts.advance(command.id)
        return cancelled

    def expire(self, now: float | None = None, batch: int = 1000) -> int:
        """Mark EXPIRED every delivery not final at its deadline (``commandExpirySeconds``
        after it was sent; a rollout's unsent deliveries have none yet)."""
        now = self._clock() if now is None else now
        expired = 0
        while True:
            due = self.store.due_expiries(now, batch)
            for command in due:
                expired += self._expire_command(command, now)
                self.store.expiry_done(command.id)
            if len(due) < batch:
                return expired

    def _expire_command(self, command: Command, now: float) -> int:
        snapshot = self.store.get(command.id)
        if snapshot is None:
            return 0
        command = snapshot.command
        expired = never_delivered = 0
        for delivery in snapshot.deliveries:
            deadline = command.deadline(delivery)
            if deadline is None or deadline > now:
                continue
            retain_until = deadline + self._timing.retention
            current: Delivery | None = delivery
            for _ in range(_CAS_ROUNDS):
                if current is None or current.status.is_final:
                    break
                final = replace(current, status=DeliveryStatus.EXPIRED)
                if self.store.replace_delivery(command.id, current.status, final, retain_until):
                    self._observer.finished(command, final)
                    expired += 1
                    never_delivered += current.delivered_at is None
                    break
                found = self.store.get_delivery(command.id, delivery.agent_id)
                current = found[1] if found else None
        if expired:
            log.info(
                "command %s expired for %d agent(s), %d of them never delivered",
                command.id,
                expired,
                never_delivered,
                extra=_ids(command.id),
            )
            if command.rollout is not None:
                self.rollouts.advance(command.id)
        return expired

    def purge(self, now: float | None = None, batch: int = 1000) -> int:
        """Drop commands whose retention after becoming final has run out."""
        now = self._clock() if now is None else now
        purged = 0
        while True:
            due = self.store.due_purges(now, batch)
            for command_id in due:
                self.store.purge(command_id)
                log.debug("command %s purged after retention", command_id, extra=_ids(command_id))
            purged += len(due)
            if len(due) < batch:
                return purged


def _with(snapshot: CommandSnapshot, changed: Sequence[Delivery]) -> CommandSnapshot:
    """The snapshot with these deliveries replaced (a command purged under our feet)."""
    by_agent = {delivery.agent_id: delivery for delivery in changed}
    return CommandSnapshot(
        snapshot.command, [by_agent.get(d.agent_id, d) for d in snapshot.deliveries]
    )


def _ids(command_id: str, agent_id: str | None = None) -> dict[str, str]:
    """The ids a log line is about, as fields (``extra``) for the JSON log format."""
    ids = {"command_id": command_id}
    if agent_id is not None:
        ids["agent_id"] = agent_id
    return ids

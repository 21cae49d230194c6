"""The embedded store: plain dicts, for one server process.

Every method runs without yielding to another greenlet, so each one is atomic under
gevent; that is all the compare-and-set guarantees the core asks for.
"""

from __future__ import annotations

import builtins
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import replace
from functools import partial

from ..core.acknowledgement import AckOutcome, AckVerdict, acknowledged, judge_ack
from ..core.agent_query import EVERY_AGENT, AgentQuery, ids_after, keyset_pages
from ..core.models import (
    AckResult,
    Agent,
    AgentState,
    Command,
    CommandSnapshot,
    CommandState,
    Delivery,
    DeliveryStatus,
    HeartbeatOutcome,
    Outage,
    RolloutStep,
    SweepNote,
)
from .deadlines import DeadlineIndex

# How many ids ``list`` reads per page: it reads them all at once anyway.
_LIST_PAGE = 10_000


class MemoryAgentStore:
    def __init__(self) -> None:
        self._agents: dict[str, Agent] = {}
        self._sorted_ids: list[str] = []
        self._by_state: dict[AgentState, set[str]] = {state: set() for state in AgentState}
        self._by_group: dict[str, set[str]] = {}
        self._deadlines: DeadlineIndex[str] = DeadlineIndex()
        # DEAD agents by when they went DEAD, so a prune reads only what it removes.
        self._dead_since: DeadlineIndex[str] = DeadlineIndex()
        # The highest generation of a deleted agent: a new registration starts above it.
        self._generation_floor: int | None = None
        # When the last lifecycle sweep ran, and the recent gaps between sweeps (outages).
        self._last_sweep: float | None = None
        self._outages: deque[Outage] = deque()

    def __len__(self) -> int:
        return len(self._agents)

    def register(
        self, agent: Agent, expected_generation: int | None = None
    ) -> tuple[Agent, bool] | None:
        known = self._agents.get(agent.id)
        if expected_generation is not None and (
            known is None or known.generation != expected_generation
        ):
            return None
        if known is None:
            insort(self._sorted_ids, agent.id)
            if self._generation_floor is not None:
                agent.generation = max(agent.generation, self._generation_floor + 1)
        else:
            agent.generation = max(agent.generation, known.generation + 1)
            agent.registered_at = known.registered_at
            if known.state is AgentState.LIVE and agent.state is AgentState.LIVE:
                agent.state_changed_at = known.state_changed_at
            self._by_state[known.state].discard(known.id)
            self._dead_since.discard(known.id)
            self._leave_group(known)
        self._agents[agent.id] = agent
        self._by_state[agent.state].add(agent.id)
        self._by_group.setdefault(agent.group, set()).add(agent.id)
        self._index_deadline(agent)
        return agent, known is None

    def heartbeat(
        self, agent_id: str, now: float, deadline: float, generation: int | None = None
    ) -> HeartbeatOutcome:
        agent = self._agents.get(agent_id)
        if agent is None:
            return HeartbeatOutcome.UNKNOWN
        if generation is not None and generation != agent.generation:
            return HeartbeatOutcome.SUPERSEDED
        agent.last_heartbeat_at = now
        agent.grace_through = None  # a fresh deadline: see core/grace.py
        outcome = HeartbeatOutcome.RECORDED
        if agent.state is not AgentState.LIVE:
            self._set_state(agent, AgentState.LIVE, now)
            outcome = HeartbeatOutcome.REVIVED
        agent.deadline = deadline
        self._deadlines.set(agent_id, deadline)
        return outcome

    def get(self, agent_id: str) -> Agent | None:
        return self._agents.get(agent_id)

    def generation(self, agent_id: str) -> int | None:
        agent = self._agents.get(agent_id)
        return agent.generation if agent is not None else None

    def get_many(self, agent_ids: Sequence[str]) -> list[Agent | None]:
        return [self._agents.get(agent_id) for agent_id in agent_ids]

    def list(self, query: AgentQuery = EVERY_AGENT) -> list[Agent]:
        # No page ever yields to another greenlet: read in one go, this is one snapshot.
        return [agent for page in self.pages(query, size=_LIST_PAGE) for agent in page]

    def pages(self, query: AgentQuery, *, size: int = _LIST_PAGE) -> Iterator[builtins.list[Agent]]:
        # A group's ids are sorted once, at the first page; every other list walks the
        # sorted ids, found again by bisection after the last id read, so registrations
        # between pages (which insert into that list) neither repeat nor skip an agent.
        group = query.group
        ids = sorted(self._by_group.get(group, ())) if group is not None else self._sorted_ids
        return keyset_pages(query, size, partial(ids_after, ids), self._read)

    def _read(self, agent_ids: builtins.list[str]) -> builtins.list[Agent | None]:
        return [self._agents.get(agent_id) for agent_id in agent_ids]

    def live_ids(self, group: str | None = None) -> builtins.list[str]:
        live = self._by_state[AgentState.LIVE]
        if group is None:
            return sorted(live)
        return sorted(live.intersection(self._by_group.get(group, ())))

    def due(self, now: float, limit: int) -> builtins.list[Agent]:
        return [self._agents[agent_id] for agent_id, _ in self._deadlines.due(now, limit)]

    def transition(
        self,
        agent_id: str,
        expected_deadline: float,
        new_state: AgentState,
        changed_at: float,
        next_deadline: float | None,
    ) -> bool:
        agent = self._agents.get(agent_id)
        if agent is None or agent.deadline != expected_deadline:
            return False
        self._set_state(agent, new_state, changed_at)
        agent.deadline = next_deadline
        self._index_deadline(agent)
        return True

    def postpone(
        self, agent_id: str, expected_deadline: float, deadline: float, grace_through: float
    ) -> bool:
        agent = self._agents.get(agent_id)
        if agent is None or agent.deadline != expected_deadline:
            return False
        agent.deadline = deadline
        agent.grace_through = grace_through
        self._deadlines.set(agent_id, deadline)
        return True

    def note_sweep(self, now: float, outage_after: float, keep: int) -> SweepNote:
        previous = self._last_sweep
        found = None
        if previous is None or now > previous:
            self._last_sweep = now
        if previous is not None and now - previous > outage_after:
            found = Outage(previous, now)
            self._outages.append(found)
            while len(self._outages) > keep:
                self._outages.popleft()
        return SweepNote(found, list(self._outages))

    def forget_outages(self, ended_by: float) -> None:
        while self._outages and self._outages[0].ended <= ended_by:
            self._outages.popleft()

    def counts(self) -> dict[AgentState, int]:
        # The per-state id sets move with every state change: their sizes are the counts.
        return {state: len(ids) for state, ids in self._by_state.items()}

    def delete(self, agent_id: str, dead_before: float | None = None) -> Agent | None:
        agent = self._agents.get(agent_id)
        if agent is None:
            self._dead_since.discard(agent_id)
            return None
        if dead_before is not None and (
            agent.state is not AgentState.DEAD or agent.state_changed_at > dead_before
        ):
            return None
        del self._agents[agent_id]
        position = bisect_left(self._sorted_ids, agent_id)
        del self._sorted_ids[position]
        self._by_state[agent.state].discard(agent_id)
        self._leave_group(agent)
        self._deadlines.discard(agent_id)
        self._dead_since.discard(agent_id)
        self._generation_floor = max(self._generation_floor or 0, agent.generation)
        return agent

    def dead(self, before: float, limit: int) -> builtins.list[str]:
        return [agent_id for agent_id, _ in self._dead_since.due(before, limit)]

    def _set_state(self, agent: Agent, state: AgentState, at: float) -> None:
        self._by_state[agent.state].discard(agent.id)
        self._by_state[state].add(agent.id)
        agent.state = state
        agent.state_changed_at = at
        if state is AgentState.DEAD:
            self._dead_since.set(agent.id, at)
        else:
            self._dead_since.discard(agent.id)

    def _leave_group(self, agent: Agent) -> None:
        members = self._by_group.get(agent.group)
        if members is not None:
            members.discard(agent.id)
            if not members:
                del self._by_group[agent.group]

    def _index_deadline(self, agent: Agent) -> None:
        if agent.deadline is None:
            self._deadlines.discard(agent.id)
        else:
            self._deadlines.set(agent.id, agent.deadline)


class _RolloutProgress:
    """Where a rollout stands; changed only inside one store call, so each is atomic."""

    __slots__ = ("cooling", "failures", "in_flight", "occupied", "unsent")

    def __init__(self, agent_ids: Sequence[str]) -> None:
        self.unsent = deque(agent_ids)  # in id order
        self.in_flight: dict[str, float] = {}  # agent id -> its delivery's deadline
        self.occupied = 0  # how many were in flight right after the last claim
        self.cooling: list[float] = []  # when each freed slot may be used again
        self.failures = 0  # FAILED + EXPIRED


class _CommandEntry:
    __slots__ = ("command", "deliveries", "open", "rollout")

    def __init__(self, command: Command, deliveries: Sequence[Delivery]) -> None:
        self.command = command
        self.deliveries = {delivery.agent_id: delivery for delivery in deliveries}
        self.open = sum(1 for delivery in deliveries if not delivery.status.is_final)
        self.rollout = (
            _RolloutProgress([d.agent_id for d in deliveries if d.sent_at is None])
            if command.rollout is not None
            else None
        )


class MemoryCommandStore:
    def __init__(self) -> None:
        self._entries: dict[str, _CommandEntry] = {}
        # agent id -> its command ids in creation order (a dict keeps order, deletes in O(1))
        self._by_agent: dict[str, dict[str, None]] = {}
        self._expiries: DeadlineIndex[str] = DeadlineIndex()
        self._purges: DeadlineIndex[str] = DeadlineIndex()
        self._rollouts_due: DeadlineIndex[str] = DeadlineIndex()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, command: Command, deliveries: Sequence[Delivery]) -> None:
        self._entries[command.id] = _CommandEntry(command, deliveries)
        for delivery in deliveries:
            self._by_agent.setdefault(delivery.agent_id, {})[command.id] = None
        if command.expires_at is not None:
            self._expiries.set(command.id, command.expires_at)
        if command.rollout is not None:
            self._rollouts_due.set(command.id, 0.0)  # started by whichever process claims

    def get(self, command_id: str) -> CommandSnapshot | None:
        entry = self._entries.get(command_id)
        if entry is None:
            return None
        return CommandSnapshot(entry.command, list(entry.deliveries.values()))

    def get_command(self, command_id: str) -> Command | None:
        entry = self._entries.get(command_id)
        return entry.command if entry is not None else None

    def get_delivery(self, command_id: str, agent_id: str) -> tuple[Command, Delivery] | None:
        entry = self._entries.get(command_id)
        if entry is None or agent_id not in entry.deliveries:
            return None
        return entry.command, entry.deliveries[agent_id]

    def mark_delivered(self, command_id: str, agent_ids: Sequence[str], at: float) -> int:
        entry = self._entries.get(command_id)
        if entry is None:
            return 0
        marked = 0
        for agent_id in agent_ids:
            current = entry.deliveries.get(agent_id)
            if current is not None and current.status is DeliveryStatus.PENDING:
                entry.deliveries[agent_id] = replace(
                    current, status=DeliveryStatus.DELIVERED, delivered_at=at
                )
                marked += 1
        return marked

    def acknowledge(
        self, command_id: str, agent_id: str, result: AckResult, now: float, retain_until: float
    ) -> AckOutcome | None:
        found = self.get_delivery(command_id, agent_id)
        if found is None:
            return None
        command, current = found
        verdict = judge_ack(command, current, result.status.delivery_status, now)
        if verdict is not AckVerdict.RECORDED:
            return AckOutcome(verdict, command, current)
        done = acknowledged(current, result, now)
        # Nothing runs between the read and this write (no greenlet switch): it applies.
        replaced = self.replace_delivery(command_id, current.status, done, retain_until)
        assert replaced
        return AckOutcome(verdict, command, done)

    def replace_delivery(
        self,
        command_id: str,
        expected: DeliveryStatus,
        delivery: Delivery,
        retain_until: float,
    ) -> bool:
        entry = self._entries.get(command_id)
        if entry is None:
            return False
        current = entry.deliveries.get(delivery.agent_id)
        if current is None or current.status is not expected:
            return False
        entry.deliveries[delivery.agent_id] = delivery
        if delivery.status.is_final and not expected.is_final:
            self._closed(command_id, entry, [delivery], retain_until)
        return True

    def cancel_deliveries(
        self,
        command_id: str,
        agent_ids: Sequence[str],
        retain_until: float,
        halt: bool = False,
    ) -> list[Delivery]:
        entry = self._entries.get(command_id)
        if entry is None:
            return []
        cancelled = self._cancel(entry, agent_ids)
        if cancelled:
            if halt:
                self._halt(entry, CommandState.CANCELLED)
            self._closed(command_id, entry, cancelled, retain_until)
        return cancelled

    @staticmethod
    def _cancel(entry: _CommandEntry, agent_ids: Iterable[str]) -> list[Delivery]:
        cancelled = []
        for agent_id in agent_ids:
            current = entry.deliveries.get(agent_id)
            if current is None or current.status.is_final:
                continue
            delivery = replace(current, status=DeliveryStatus.CANCELLED)
            entry.deliveries[agent_id] = delivery
            cancelled.append(delivery)
        return cancelled

    @staticmethod
    def _halt(entry: _CommandEntry, state: CommandState) -> None:
        """The first reason a command stopped early stays its state; nothing more is sent."""
        if entry.command.halted is None:
            entry.command = replace(entry.command, halted=state)
        if entry.rollout is not None:
            entry.rollout.unsent.clear()
            MemoryCommandStore._sent_all(entry)

    def _closed(
        self,
        command_id: str,
        entry: _CommandEntry,
        finals: Sequence[Delivery],
        retain_until: float,
    ) -> None:
        """These open deliveries became final: a rollout's leave its window (the command
        is due for a claim), and the last one schedules the purge."""
        entry.open -= len(finals)
        progress = entry.rollout
        if progress is not None:
            for delivery in finals:
                progress.in_flight.pop(delivery.agent_id, None)
                if delivery.status in (DeliveryStatus.FAILED, DeliveryStatus.EXPIRED):
                    progress.failures += 1
            if entry.open > 0:
                self._rollouts_due.set(command_id, 0.0)
        if entry.open == 0:
            self._expiries.discard(command_id)
            self._rollouts_due.discard(command_id)
            self._purges.set(command_id, retain_until)

    def claim(self, command_id: str, now: float, retain_until: float) -> RolloutStep:
        entry = self._entries.get(command_id)
        if entry is None:
            return RolloutStep(None)
        progress, plan = entry.rollout, entry.command.rollout
        if progress is None or plan is None or entry.command.halted is not None:
            self._rollouts_due.discard(command_id)
            return RolloutStep(entry.command)
        if plan.exceeded(progress.failures):
            cancelled = self._cancel(entry, progress.unsent)
            progress.unsent.clear()
            if cancelled:
                self._halt(entry, CommandState.STOPPED)
                self._closed(command_id, entry, cancelled, retain_until)
                self._rollouts_due.discard(command_id)
                return RolloutStep(entry.command, cancelled=cancelled)
        room, progress.cooling = plan.room(
            now, len(progress.in_flight), progress.occupied, progress.cooling
        )
        sent: list[str] = []
        while len(sent) < room and progress.unsent:
            agent_id = progress.unsent.popleft()
            current = entry.deliveries[agent_id]
            if current.status is not DeliveryStatus.PENDING:
                continue  # final before its turn (acknowledged, or its agent deleted)
            entry.deliveries[agent_id] = replace(current, sent_at=now)
            progress.in_flight[agent_id] = now + plan.expiry
            sent.append(agent_id)
        progress.occupied = len(progress.in_flight)
        if progress.in_flight:
            earliest = min(progress.in_flight.values())
            indexed = self._expiries.get(command_id)
            if indexed is None or earliest < indexed:
                self._expiries.set(command_id, earliest)
        if not progress.unsent:
            self._sent_all(entry)
        if progress.unsent and progress.cooling:
            self._rollouts_due.set(command_id, progress.cooling[0])
        else:
            self._rollouts_due.discard(command_id)
        return RolloutStep(entry.command, sent, now if sent else None)

    @staticmethod
    def _sent_all(entry: _CommandEntry) -> None:
        """Nothing more will be sent: the command expires with its last delivery sent."""
        progress, plan = entry.rollout, entry.command.rollout
        if progress is None or plan is None or entry.command.expires_at is not None:
            return
        sent = [d.sent_at for d in entry.deliveries.values() if d.sent_at is not None]
        if sent:
            entry.command = replace(entry.command, expires_at=max(sent) + plan.expiry)

    def due_rollouts(self, now: float, limit: int) -> list[str]:
        return [command_id for command_id, _ in self._rollouts_due.due(now, limit)]

    def for_agent(
        self,
        agent_id: str,
        statuses: Collection[DeliveryStatus] | None = None,
        since: float | None = None,
    ) -> list[tuple[Command, Delivery]]:
        found = []
        for command_id in reversed(self._by_agent.get(agent_id, {})):
            entry = self._entries[command_id]
            if since is not None and entry.command.created_at < since:
                break  # newest first: every command from here on is older
            delivery = entry.deliveries[agent_id]
            if not statuses or delivery.status in statuses:
                found.append((entry.command, delivery))
        return found

    def due_expiries(self, now: float, limit: int) -> list[Command]:
        return [self._entries[cid].command for cid, _ in self._expiries.due(now, limit)]

    def expiry_done(self, command_id: str) -> None:
        entry = self._entries.get(command_id)
        progress = entry.rollout if entry is not None else None
        if progress is not None and progress.in_flight:
            self._expiries.set(command_id, min(progress.in_flight.values()))
        else:
            self._expiries.discard(command_id)

    def due_purges(self, now: float, limit: int) -> list[str]:
        return [command_id for command_id, _ in self._purges.due(now, limit)]

    def purge(self, command_id: str) -> None:
        entry = self._entries.pop(command_id, None)
        self._expiries.discard(command_id)
        self._purges.discard(command_id)
        self._rollouts_due.discard(command_id)
        if entry is None:
            return
        for agent_id in entry.deliveries:
            commands = self._by_agent.get(agent_id)
            if commands is not None:
                commands.pop(command_id, None)
                if not commands:
                    del self._by_agent[agent_id]

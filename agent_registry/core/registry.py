"""Agents: registration, heartbeats, reads and the lifecycle sweep."""

from __future__ import annotations

import builtins
import logging
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..clock import Clock
from ..errors import AgentNotFound, AgentNotRegistered, Unauthenticated
from .agent_query import EVERY_AGENT, AgentQuery
from .grace import KEPT_OUTAGES, announce, forgotten_by, graced_deadline
from .models import Agent, AgentState, HeartbeatOutcome, Outage, Transition
from .ports import AgentStore, FleetObserver, NoObserver, OutageWatch

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Lifecycle:
    stale_after: float
    dead_after: float
    # Two sweeps further apart than this mean an outage (2 x SWEEP_INTERVAL_SECONDS, see
    # core/grace.py). None: sweeps are not watched for gaps, for tests that move the clock
    # by minutes between two sweeps as if sweeps had run all along.
    outage_after: float | None = None


@dataclass(frozen=True, slots=True)
class Registration:
    id: str
    group: str
    name: str | None = None
    version: str | None = None
    route_ids: tuple[str, ...] = ()
    capabilities: dict[str, Any] | None = None


class Registry:
    def __init__(
        self,
        store: AgentStore,
        clock: Clock,
        lifecycle: Lifecycle,
        observer: FleetObserver | None = None,
        outage_watch: OutageWatch | None = None,
    ) -> None:
        self.store = store
        self._clock = clock
        self._lifecycle = lifecycle
        self._observer: FleetObserver = observer or NoObserver()
        self._outage_watch = outage_watch

    def register(
        self, registration: Registration, renewing: int | None = None
    ) -> tuple[Agent, bool]:
        """Create the agent, or resume a known identity. Returns (agent, created).

        ``renewing`` is the generation of the agent token the caller registers with (a
        renewal): it must still be the agent's, or nothing changes.
        """
        now = self._clock()
        agent = Agent(
            id=registration.id,
            name=registration.name if registration.name is not None else registration.id,
            group=registration.group,
            version=registration.version,
            route_ids=list(registration.route_ids),
            capabilities=dict(registration.capabilities or {}),
            state=AgentState.LIVE,
            registered_at=now,
            last_heartbeat_at=now,
            state_changed_at=now,
            deadline=now + self._lifecycle.stale_after,
            # Milliseconds, so that it rises past a delete or a restart of the memory store,
            # and random low digits, so that a clock stepped back is unlikely to give an old
            # token's generation to a new registration.
            generation=int(now * 1000) * 1000 + secrets.randbelow(1000),
        )
        outcome = self.store.register(agent, renewing)
        if outcome is None:
            raise _superseded(agent.id)
        stored, created = outcome
        log.info(
            "agent %s %s (group %s)",
            agent.id,
            "registered" if created else "re-registered",
            agent.group,
            extra={"agent_id": agent.id},
        )
        self._observer.registered(stored, created)
        return stored, created

    def heartbeat(self, agent_id: str, generation: int | None = None) -> None:
        """Record a heartbeat; with ``generation`` (auth on), only from the current token."""
        now = self._clock()
        outcome = self.store.heartbeat(agent_id, now, now + self._lifecycle.stale_after, generation)
        if outcome is HeartbeatOutcome.RECORDED:
            return
        if outcome is HeartbeatOutcome.REVIVED:
            self._observer.revived(agent_id, now)
            return
        if generation is not None:
            raise _superseded(agent_id)
        raise AgentNotRegistered(
            f"Agent '{agent_id}' is not registered; register again with "
            "POST /api/v1/agents/register."
        )

    def check_generation(self, agent_id: str, generation: int | None) -> None:
        """Refuse an agent token whose generation is no longer the agent's: it registered
        again since (another copy took the id over, or it renewed), or it was deleted.

        One of three places that apply this rule; the other two do it inside the store's
        own write, atomically: the heartbeat (``heartbeat(generation=)``) and a renewal
        (``register(renewing=)``).
        """
        if generation is None or self.store.generation(agent_id) != generation:
            raise _superseded(agent_id)

    def get(self, agent_id: str) -> Agent:
        agent = self.store.get(agent_id)
        if agent is None:
            raise AgentNotFound(f"Agent '{agent_id}' is not registered.")
        return agent

    def list(self, query: AgentQuery = EVERY_AGENT) -> builtins.list[Agent]:
        return self.store.list(query)

    def pages(self, query: AgentQuery, *, size: int) -> Iterator[builtins.list[Agent]]:
        """The agents ``query`` asks for, read ``size`` candidates at a time, for answers
        too big to build at once (see ``AgentStore.pages``)."""
        return self.store.pages(query, size=size)

    def counts(self) -> dict[AgentState, int]:
        """Agents per state, as the store keeps them (no scan)."""
        return self.store.counts()

    def sweep(self, now: float | None = None, batch: int = 10_000) -> builtins.list[Transition]:
        """Apply every lifecycle transition due at ``now``; each one happens once.

        A transition is dated at its deadline, not at the moment the sweep noticed it.
        An agent both STALE-due and DEAD-due (a long pause) goes through both. The server's
        own outages move the deadlines they caught (core/grace.py): such an agent is
        postponed instead, or dated at its moved deadline.
        """
        now = self._clock() if now is None else now
        outages = self._note_sweep(now)
        done: list[Transition] = []
        while True:
            moved = 0
            for agent in self.store.due(now, batch):
                # A heartbeat may have moved the deadline since the store listed the agent.
                if agent.deadline is None or agent.deadline > now or agent.state is AgentState.DEAD:
                    continue
                deadline = agent.deadline
                if outages:
                    deadline = graced_deadline(agent, outages, self._lifecycle.stale_after)
                if deadline > now:
                    if self.store.postpone(agent.id, agent.deadline, deadline, outages[-1].ended):
                        moved += 1
                    continue
                transition = self._advance(agent, deadline)
                if transition is not None:
                    moved += 1
                    done.append(transition)
            if moved == 0:
                break
        self._forget(outages, now)
        return done

    def _advance(self, agent: Agent, at: float) -> Transition | None:
        """The agent's next transition, dated ``at`` (its deadline, or where outages moved it)."""
        assert agent.deadline is not None
        if agent.state is AgentState.LIVE:
            new_state, next_deadline = AgentState.STALE, at + self._lifecycle.dead_after
        else:
            new_state, next_deadline = AgentState.DEAD, None
        previous = agent.state
        if not self.store.transition(agent.id, agent.deadline, new_state, at, next_deadline):
            return None
        log.info(
            "agent %s went %s (was %s)", agent.id, new_state, previous, extra={"agent_id": agent.id}
        )
        transition = Transition(agent.id, previous, new_state, at)
        self._observer.transitioned(transition)
        return transition

    def _note_sweep(self, now: float) -> Sequence[Outage]:
        """Note this sweep in the store; the outages still remembered, oldest first.

        Done before anything is swept, in one atomic step: the first sweep after an outage
        (in whichever process) is the one that finds it, and no sweep transitions an agent
        without knowing of it.
        """
        if self._lifecycle.outage_after is None:
            return ()
        note = self.store.note_sweep(now, self._lifecycle.outage_after, KEPT_OUTAGES)
        if note.found is not None:
            announce(note.found, self._lifecycle.stale_after, self._outage_watch)
        return note.recent

    def _forget(self, outages: Sequence[Outage], now: float) -> None:
        """After a complete sweep, forget the outages no deadline left to sweep can feel."""
        ended_by = forgotten_by(now, self._lifecycle.stale_after, self._lifecycle.dead_after)
        if outages and outages[0].ended <= ended_by:
            self.store.forget_outages(ended_by)


def _superseded(agent_id: str) -> Unauthenticated:
    log.info(
        "agent %s: refused a token that is no longer its current one",
        agent_id,
        extra={"agent_id": agent_id},
    )
    return Unauthenticated(
        f"This token is no longer valid for agent '{agent_id}': the agent registered again "
        "with another token, or was deleted. Register again with an enrollment token.",
        reason="revoked",
    )

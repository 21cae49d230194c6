"""The interfaces the core needs from the outside world.

Two implementations exist for each store: in memory (one process) and Redis (many
processes and hosts). Each store method is one atomic step: where the core must not lose a
race with another process (a heartbeat against a sweep, two acks), the method is a
compare-and-set and reports whether it applied.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any, Protocol

from .acknowledgement import AckOutcome
from .agent_query import EVERY_AGENT, AgentQuery
from .models import (
    AckResult,
    Agent,
    AgentState,
    Command,
    CommandSnapshot,
    Delivery,
    DeliveryStatus,
    HeartbeatOutcome,
    Outage,
    RolloutStep,
    SweepNote,
    Transition,
)


class AgentStore(Protocol):
    def register(
        self, agent: Agent, expected_generation: int | None = None
    ) -> tuple[Agent, bool] | None:
        """Insert, or replace a known agent keeping its ``registered_at``.

        When the known agent was already LIVE its ``state_changed_at`` is kept too (no
        transition happened). The stored ``generation`` is the larger of ``agent.generation``
        and the known one plus one, so it rises at every registration. Returns the stored
        agent and whether it was new; None, changing nothing, when ``expected_generation``
        is given and is not the known agent's (or the agent is unknown).
        """

    def heartbeat(
        self, agent_id: str, now: float, deadline: float, generation: int | None = None
    ) -> HeartbeatOutcome:
        """Record a heartbeat: LIVE (changed at ``now`` if it was not), next deadline.

        With ``generation``, only if it is still the agent's (else SUPERSEDED, unchanged).
        """

    def get(self, agent_id: str) -> Agent | None: ...

    def generation(self, agent_id: str) -> int | None:
        """The agent's current generation (None when unknown): one small read."""

    def get_many(self, agent_ids: Sequence[str]) -> list[Agent | None]: ...

    def list(self, query: AgentQuery = EVERY_AGENT) -> list[Agent]:
        """Agents ordered by id (code point order), filtered, keyset-paged."""

    def pages(self, query: AgentQuery, *, size: int) -> Iterator[builtins.list[Agent]]:
        """The agents ``list`` returns, read as the caller iterates: each step reads the
        next ``size`` candidate ids in id order and yields those that match (a page may be
        shorter than ``size``, even before the end; none is empty).

        Nothing is read before the first step, so an outage shows on the first ``next()``
        (and on any later one). Each page is read when it is asked for: every id appears at
        most once and in order, an agent changed between two pages appears as it was when
        its page was read, and with a filter the candidates may be fixed at the first page
        (an agent that joins a group or a state after it may be missed).
        """

    def live_ids(self, group: str | None = None) -> builtins.list[str]:
        """Ids of LIVE agents (of one group, or all), ordered by id."""

    def due(self, now: float, limit: int) -> builtins.list[Agent]:
        """Agents whose lifecycle deadline is at or before ``now``, earliest first."""

    def transition(
        self,
        agent_id: str,
        expected_deadline: float,
        new_state: AgentState,
        changed_at: float,
        next_deadline: float | None,
    ) -> bool:
        """Move the agent to ``new_state`` if its deadline is still ``expected_deadline``.

        A heartbeat that arrived in between moved the deadline, so the transition is
        skipped: that is what makes a sweep safe to run in every process at once.
        """

    def postpone(
        self, agent_id: str, expected_deadline: float, deadline: float, grace_through: float
    ) -> bool:
        """Move the agent's deadline to ``deadline``, counting the outages that ended at or
        before ``grace_through``, if its deadline is still ``expected_deadline`` (a
        compare-and-set, like ``transition``: a heartbeat in between wins)."""

    def note_sweep(self, now: float, outage_after: float, keep: int) -> SweepNote:
        """Record that a lifecycle sweep runs at ``now``; one atomic step.

        When the previous sweep noted (by any process) is more than ``outage_after``
        seconds before ``now``, the gap is an outage: it is remembered (the last ``keep``
        of them) and answered as ``found``, to this caller only. ``recent`` is every
        remembered outage, oldest first, this one included. The noted time never goes
        back (a process whose clock is behind does not shorten the next gap). A store
        reached over the network may date the note when it arrived, if it was held up
        there longer than a sweep interval (half ``outage_after``; a paused Redis): the
        outage ended then, not when the sweep began (so its end may be after ``now``).
        """

    def forget_outages(self, ended_by: float) -> None:
        """Forget the remembered outages that ended at or before ``ended_by``."""

    def counts(self) -> dict[AgentState, int]:
        """How many agents are in each state (every state present, 0 included).

        Kept up to date by the writes themselves, so reading it costs O(1) whatever the
        fleet size: it must never scan the agents.
        """

    def delete(self, agent_id: str, dead_before: float | None = None) -> Agent | None:
        """Remove the agent from every record and index; the removed agent, or None.

        With ``dead_before`` (a prune), only an agent that is DEAD and went DEAD at or
        before then is removed, so that one which heartbeated since it was listed stays.
        A removed agent's generation is never handed out again to the same id, so a token
        issued before the delete stays refused after the id registers anew.
        """

    def dead(self, before: float, limit: int) -> builtins.list[str]:
        """Ids of DEAD agents that went DEAD at or before ``before``, earliest first.

        Read from an index kept by the writes (never a scan of the fleet).
        """


class CommandStore(Protocol):
    def add(self, command: Command, deliveries: Sequence[Delivery]) -> None: ...

    def get(self, command_id: str) -> CommandSnapshot | None: ...

    def get_command(self, command_id: str) -> Command | None:
        """The command alone, without reading its deliveries."""

    def get_delivery(self, command_id: str, agent_id: str) -> tuple[Command, Delivery] | None: ...

    def mark_delivered(self, command_id: str, agent_ids: Sequence[str], at: float) -> int:
        """PENDING -> DELIVERED (at ``at``) for each agent still PENDING; returns how many."""

    def acknowledge(
        self, command_id: str, agent_id: str, result: AckResult, now: float, retain_until: float
    ) -> AckOutcome | None:
        """An agent's ack, judged (``judge_ack``) and, when allowed, recorded, in one atomic
        step; None when the command has no delivery to the agent. A recorded ack that makes
        the command final schedules its purge at ``retain_until``, as ``replace_delivery``
        does (and a rollout's delivery leaves its window, as below)."""

    def replace_delivery(
        self,
        command_id: str,
        expected: DeliveryStatus,
        delivery: Delivery,
        retain_until: float,
    ) -> bool:
        """Compare-and-set one delivery on its status.

        When this makes the last open delivery of the command final, the command is
        scheduled for purging at ``retain_until``.
        """

    def cancel_deliveries(
        self,
        command_id: str,
        agent_ids: Sequence[str],
        retain_until: float,
        halt: bool = False,
    ) -> list[Delivery]:
        """Every listed delivery that is not final becomes CANCELLED (``deliveredAt`` kept).

        Compare-and-set per delivery, so a concurrent ack, expiry or cancel is never
        overwritten and each delivery is cancelled by one caller only: the answer is the
        deliveries this call changed. When the last open delivery becomes final, the
        command is scheduled for purging at ``retain_until``, as ``replace_delivery`` does.
        With ``halt`` (the command is cancelled) and anything changed, the command is
        ``halted`` CANCELLED in the same step, unless it was halted already, so that no
        claim of its rollout sends anything more.
        """

    def for_agent(
        self,
        agent_id: str,
        statuses: Collection[DeliveryStatus] | None = None,
        since: float | None = None,
    ) -> list[tuple[Command, Delivery]]:
        """The agent's deliveries, newest command first (created at or after ``since``)."""

    def due_expiries(self, now: float, limit: int) -> list[Command]:
        """Commands with a delivery whose deadline has passed, not yet swept: without a
        rollout, once its ``expires_at`` passed; with one, each time the earliest deadline
        of its deliveries in flight passes."""

    def expiry_done(self, command_id: str) -> None:
        """The sweep expired what was due: unindex the command, or (a rollout) index it
        again at the earliest deadline of its deliveries still in flight, in one step with
        the claims that add to them."""

    # Rollouts. A delivery of a rollout becoming final (``replace_delivery``,
    # ``cancel_deliveries``) leaves its window, counts as a failure when FAILED or
    # EXPIRED, and makes the command due (``due_rollouts``) in the same atomic step: the
    # claim that follows may be made by any process, even when the one that saw the
    # delivery become final died before it claimed.

    def claim(self, command_id: str, now: float, retain_until: float) -> RolloutStep:
        """One step of the command's rollout, atomic (never two callers sending one
        target, never more than the window in flight).

        When its failures exceed ``max_failures`` and targets are still unsent: those are
        CANCELLED and the command ``halted`` STOPPED (scheduled for purging at
        ``retain_until`` if that made it final). Otherwise the next targets, in id order,
        as many as ``RolloutPlan.room`` allows, are sent at ``now`` (skipping any whose
        delivery became final unsent); when none remain unsent, ``expires_at`` is set to
        the deadline of the last one sent. The command is due again when a freed slot's
        batch interval ends, or not at all (the next final delivery makes it due).
        A halted, finished or unknown command changes nothing.
        """

    def due_rollouts(self, now: float, limit: int) -> list[str]:
        """Ids of the rollouts due for a claim at ``now``, earliest first."""

    def due_purges(self, now: float, limit: int) -> list[str]: ...

    def purge(self, command_id: str) -> None: ...


class Presence(Protocol):
    """Which agents have an event stream open, in any process."""

    def is_connected(self, agent_id: str) -> bool: ...

    def connected(self, agent_ids: Iterable[str]) -> set[str]: ...

    def connected_count(self) -> int:
        """How many agents have a stream open, in every process; O(1), never a scan."""


class Bus(Protocol):
    """Carries a new command to whichever process holds each target's stream."""

    def publish(
        self, command: Command, agent_ids: Sequence[str], sent_at: float | None = None
    ) -> None:
        """Write the command to these agents' open streams, in whichever process holds
        each. ``sent_at``: a batch of a rollout, sent then (``command`` carries that
        batch's ``expires_at``); streams opened after it are not written to."""

    def cancel(self, command_id: str, agent_ids: Sequence[str]) -> None:
        """Write the ``cancel`` event of the command to each of these agents' open streams."""

    def disconnect(self, agent_id: str) -> None:
        """End the agent's stream, in whichever process holds it (the agent was deleted)."""

    def supersede(self, agent_id: str, generation: int) -> None:
        """End the agent's stream, wherever it is open, if an older token opened it."""


class RecentCommands(Protocol):
    """What a bus across processes reads to catch up after it reconnects."""

    def get(self, command_id: str) -> CommandSnapshot | None: ...

    def pending_to(
        self, command_id: str, agent_ids: Sequence[str]
    ) -> tuple[Command, list[str]] | None:
        """The command, and those of ``agent_ids`` whose delivery of it is still PENDING,
        without reading the other deliveries; None: no such command."""

    def unexpired_ids(self, now: float, limit: int) -> list[str]:
        """Ids of the commands still inside their expiry window, oldest first."""


class FleetObserver(Protocol):
    """Told what happened to the fleet, once per event, after the store applied it.

    The core calls it only when the store's compare-and-set took effect, so with several
    processes sharing one store each event is reported by exactly one of them. Metrics
    implement it (``server/metrics.py``); an operator event stream can too. It must not
    raise and must not block: it runs inside requests and sweeps.
    """

    def registered(self, agent: Agent, created: bool) -> None:
        """An agent registered (``created``) or resumed its identity."""

    def transitioned(self, transition: Transition) -> None:
        """A lifecycle sweep moved an agent (LIVE -> STALE, STALE -> DEAD)."""

    def revived(self, agent_id: str, at: float) -> None:
        """A heartbeat made a STALE or DEAD agent LIVE again (at ``at``)."""

    def command_sent(self, command: Command, agent_ids: Sequence[str]) -> None:
        """A command was stored with one PENDING delivery per target."""

    def delivered(self, command_id: str, created_at: float, count: int, at: float) -> None:
        """``count`` deliveries of a command went PENDING -> DELIVERED at ``at``."""

    def finished(self, command: Command, delivery: Delivery) -> None:
        """A delivery reached a final status (an ack, a failure ack, an expiry, a cancel)."""

    def deleted(self, agent: Agent) -> None:
        """An agent was deleted (one by one, or pruned)."""


class OutageWatch(Protocol):
    """Told of the outages the lifecycle sweep finds (the server's StoreOutage)."""

    def reported_during(self, outage: Outage) -> bool:
        """Whether this process already logged the store unreachable during ``outage``."""

    def found(self, outage: Outage) -> None:
        """An outage was found (by this process alone); counted in the metrics."""


class NoObserver:
    """The default observer: nothing is told, nothing is paid."""

    def registered(self, agent: Agent, created: bool) -> None:
        pass

    def transitioned(self, transition: Transition) -> None:
        pass

    def revived(self, agent_id: str, at: float) -> None:
        pass

    def command_sent(self, command: Command, agent_ids: Sequence[str]) -> None:
        pass

    def delivered(self, command_id: str, created_at: float, count: int, at: float) -> None:
        pass

    def finished(self, command: Command, delivery: Delivery) -> None:
        pass

    def deleted(self, agent: Agent) -> None:
        pass


class Observers:
    """One ``FleetObserver`` that tells several (the metrics, the operator event stream),
    in order."""

    def __init__(self, *observers: FleetObserver) -> None:
        self._observers = observers

    def registered(self, agent: Agent, created: bool) -> None:
        for observer in self._observers:
            observer.registered(agent, created)

    def transitioned(self, transition: Transition) -> None:
        for observer in self._observers:
            observer.transitioned(transition)

    def revived(self, agent_id: str, at: float) -> None:
        for observer in self._observers:
            observer.revived(agent_id, at)

    def command_sent(self, command: Command, agent_ids: Sequence[str]) -> None:
        for observer in self._observers:
            observer.command_sent(command, agent_ids)

    def delivered(self, command_id: str, created_at: float, count: int, at: float) -> None:
        for observer in self._observers:
            observer.delivered(command_id, created_at, count, at)

    def finished(self, command: Command, delivery: Delivery) -> None:
        for observer in self._observers:
            observer.finished(command, delivery)

    def deleted(self, agent: Agent) -> None:
        for observer in self._observers:
            observer.deleted(agent)


class StreamGauge(Protocol):
    """Counts this process's open streams (a metrics gauge); the hub moves it."""

    def inc(self, amount: float = 1) -> None: ...

    def dec(self, amount: float = 1) -> None: ...


# Between the stream hub and shared presence: neither knows the other's classes.


class OpenStream(Protocol):
    """One open event stream, as presence sees it (the hub's ``Subscription`` is one)."""

    @property
    def agent_id(self) -> str: ...

    @property
    def token(self) -> str:
        """Unique to this stream, so one process's cleanup never erases another's claim."""

    def end(self) -> None: ...


class StreamListener(Protocol):
    """Told when streams open and close."""

    def opened(self, stream: OpenStream) -> None: ...

    def closed(self, stream: OpenStream) -> None: ...


class StreamListeners:
    """One ``StreamListener`` that tells several (shared presence, then the operator event
    stream, which reads presence), in order."""

    def __init__(self, *listeners: StreamListener) -> None:
        self._listeners = listeners

    def opened(self, stream: OpenStream) -> None:
        for listener in self._listeners:
            listener.opened(stream)

    def closed(self, stream: OpenStream) -> None:
        for listener in self._listeners:
            listener.closed(stream)


class FleetNotices(Protocol):
    """What the operator event stream takes from other processes: their notices (which
    agents and commands changed, and the deleted agents as they were), and word that some
    may have been lost (a bus that reconnected)."""

    def receive(self, notice: dict[str, Any]) -> None: ...

    def resync(self) -> None: ...


class FleetRelay(Protocol):
    """Carries the operator event stream's notices between processes (the Redis bus)."""

    def announce_fleet(self, notice: dict[str, Any]) -> None:
        """Tell every other process; they read the current state themselves."""

    def relay_fleet_to(self, notices: FleetNotices) -> None:
        """Hand the notices other processes announce to ``notices``."""


class SharedPresence(Presence, StreamListener, Protocol):
    """Presence that several processes share, each renewing the claims of its streams."""

    def refresh(self, streams: Sequence[OpenStream]) -> list[OpenStream]:
        """Renew every local claim; returns the streams another process has replaced."""

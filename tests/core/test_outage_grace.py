"""Outage grace (API.md § Lifecycle): the server's own outages are not the agents' fault.

Sweeps run every second on the fake clock; an outage is a stretch of it with no sweep.
"""

from __future__ import annotations

import logging

import pytest

from agent_registry.core.grace import KEPT_OUTAGES
from agent_registry.core.models import AgentState, Outage
from agent_registry.core.registry import Lifecycle, Registration, Registry
from agent_registry.errors import StoreUnavailable
from agent_registry.stores.memory import MemoryAgentStore
from harness.clock import T0, FakeClock

STALE_AFTER = 90.0
DEAD_AFTER = 300.0
INTERVAL = 1.0

LIVE, STALE, DEAD = AgentState.LIVE, AgentState.STALE, AgentState.DEAD


class Watch:
    """An OutageWatch: whether the store outage was already logged; what it was told."""

    def __init__(self, reported: bool = False) -> None:
        self.reported = reported
        self.outages: list[Outage] = []

    def reported_during(self, outage: Outage) -> bool:
        return self.reported

    def found(self, outage: Outage) -> None:
        self.outages.append(outage)


@pytest.fixture
def store() -> MemoryAgentStore:
    return MemoryAgentStore()


@pytest.fixture
def watch() -> Watch:
    return Watch()


def make_registry(store, clock, watch=None) -> Registry:
    lifecycle = Lifecycle(STALE_AFTER, DEAD_AFTER, outage_after=2 * INTERVAL)
    return Registry(store, clock, lifecycle, outage_watch=watch)


@pytest.fixture
def registry(store, clock, watch) -> Registry:
    return make_registry(store, clock, watch)


def register(registry: Registry, agent_id: str = "agent-1") -> None:
    registry.register(Registration(id=agent_id, group="g"))


def sweep_until(registry: Registry, clock: FakeClock, until: float) -> list:
    """Sweep every second up to ``until`` (a server running normally); the transitions."""
    done = registry.sweep()
    while clock.now + INTERVAL <= until:
        clock.advance(INTERVAL)
        done += registry.sweep()
    return done


def outage(registry: Registry, clock: FakeClock, seconds: float) -> list:
    """No sweep for ``seconds``, then the first sweep after: its transitions."""
    clock.advance(seconds)
    return registry.sweep()


def state(registry: Registry, agent_id: str = "agent-1") -> tuple[AgentState, float]:
    agent = registry.get(agent_id)
    return agent.state, agent.state_changed_at


def test_an_outage_while_live_gives_a_full_stale_after_from_its_end(registry, clock):
    register(registry)
    sweep_until(registry, clock, T0 + 50)
    assert outage(registry, clock, 30) == []  # from T0 + 50 to T0 + 80

    sweep_until(registry, clock, T0 + 80 + STALE_AFTER - 1)
    assert state(registry) == (LIVE, T0)
    [stale] = sweep_until(registry, clock, T0 + 80 + STALE_AFTER)
    # Dated at the moved deadline: the end of the outage + staleAfter, not T0 + 90.
    assert (stale.to_state, stale.at) == (STALE, T0 + 80 + STALE_AFTER)
    assert state(registry) == (STALE, T0 + 170)
    [dead] = sweep_until(registry, clock, T0 + 170 + DEAD_AFTER)
    assert (dead.to_state, dead.at) == (DEAD, T0 + 170 + DEAD_AFTER)


def test_a_live_agent_that_heartbeats_after_the_outage_stays_live(registry, clock):
    register(registry)
    sweep_until(registry, clock, T0 + 80)
    outage(registry, clock, 200)  # longer than staleAfter: its deadline passed meanwhile
    assert state(registry) == (LIVE, T0)
    sweep_until(registry, clock, T0 + 280 + STALE_AFTER - 10)
    registry.heartbeat("agent-1")
    assert sweep_until(registry, clock, T0 + 280 + 2 * STALE_AFTER - 11) == []
    assert state(registry) == (LIVE, T0)


def test_a_late_deadline_is_kept_when_later_than_the_end_of_the_outage_plus_stale_after(
    registry, clock
):
    register(registry)
    sweep_until(registry, clock, T0 + 85)
    registry.heartbeat("agent-1")  # deadline T0 + 175
    outage(registry, clock, 3)  # from T0 + 85 to T0 + 88: grace until T0 + 178
    [stale] = sweep_until(registry, clock, T0 + 178)
    assert stale.at == T0 + 88 + STALE_AFTER
    register(registry, "agent-2")  # at T0 + 178, deadline T0 + 268, after any grace
    [stale] = sweep_until(registry, clock, T0 + 268)
    assert (stale.agent_id, stale.at) == ("agent-2", T0 + 268)


def test_a_heartbeat_dated_during_the_outage_that_lands_after_the_postpone_is_graced(
    registry, store, clock
):
    """Regression (CI, Redis paused under 2 workers): a heartbeat held up while Redis was
    paused ran after the sweep that postponed its agent; its deadline, earlier than the
    grace, made the agent STALE before the grace ended."""
    register(registry)
    sweep_until(registry, clock, T0 + 50)
    outage(registry, clock, 100)  # from T0 + 50 to T0 + 150: moved to T0 + 240
    store.heartbeat("agent-1", T0 + 140, T0 + 140 + STALE_AFTER)  # sent at T0 + 140

    assert sweep_until(registry, clock, T0 + 150 + STALE_AFTER - 1) == []
    [stale] = sweep_until(registry, clock, T0 + 150 + STALE_AFTER)
    assert stale.at == T0 + 150 + STALE_AFTER


def test_an_outage_while_stale_delays_dead_by_its_length(registry, clock):
    register(registry)
    sweep_until(registry, clock, T0 + 100)
    assert state(registry) == (STALE, T0 + STALE_AFTER)
    outage(registry, clock, 60)  # from T0 + 100 to T0 + 160

    sweep_until(registry, clock, T0 + STALE_AFTER + DEAD_AFTER + 60 - 1)
    assert state(registry) == (STALE, T0 + STALE_AFTER)  # STALE since then, unchanged
    [dead] = sweep_until(registry, clock, T0 + STALE_AFTER + DEAD_AFTER + 60)
    assert dead.at == T0 + STALE_AFTER + DEAD_AFTER + 60
    assert state(registry) == (DEAD, T0 + 450)


def test_two_outages_while_stale_add_up(registry, clock):
    register(registry)
    sweep_until(registry, clock, T0 + 100)
    outage(registry, clock, 60)  # T0 + 100 .. T0 + 160
    sweep_until(registry, clock, T0 + 200)
    outage(registry, clock, 40)  # T0 + 200 .. T0 + 240
    [dead] = sweep_until(registry, clock, T0 + 390 + 100)
    assert dead.at == T0 + STALE_AFTER + DEAD_AFTER + 60 + 40


def test_an_outage_longer_than_stale_and_dead_leaves_a_full_stale_after(registry, clock):
    register(registry)
    register(registry, "silent")
    sweep_until(registry, clock, T0 + 10)
    registry.heartbeat("agent-1")
    end = T0 + 10 + 1000
    assert outage(registry, clock, 1000) == []  # no one goes STALE, let alone DEAD
    assert state(registry, "silent") == (LIVE, T0)

    sweep_until(registry, clock, end + 10)
    registry.heartbeat("agent-1")  # it heartbeats again; "silent" does not
    done = sweep_until(registry, clock, end + STALE_AFTER + DEAD_AFTER)
    assert [(t.agent_id, t.to_state, t.at) for t in done if t.agent_id == "silent"] == [
        ("silent", STALE, end + STALE_AFTER),
        ("silent", DEAD, end + STALE_AFTER + DEAD_AFTER),
    ]
    assert state(registry) == (STALE, end + 10 + STALE_AFTER)  # its own deadline, unmoved


def test_an_agent_silent_before_the_outage_keeps_its_passed_deadlines(registry, clock):
    register(registry)
    sweep_until(registry, clock, T0 + STALE_AFTER + DEAD_AFTER + 5)
    assert state(registry) == (DEAD, T0 + STALE_AFTER + DEAD_AFTER)
    register(registry, "stale-before")  # at T0 + 395
    sweep_until(registry, clock, T0 + 395 + STALE_AFTER + 1)
    outage(registry, clock, 500)
    sweep_until(registry, clock, clock.now + 10)
    assert state(registry) == (DEAD, T0 + STALE_AFTER + DEAD_AFTER)  # not touched
    # Its STALE deadline had passed before the outage: STALE from then, only DEAD moves.
    assert state(registry, "stale-before") == (STALE, T0 + 395 + STALE_AFTER)


class _FailsOnce(MemoryAgentStore):
    """A store that notes a sweep and then becomes unreachable before the sweep reads."""

    fail = False

    def due(self, now, limit):
        if self.fail:
            self.fail = False
            raise StoreUnavailable("down")
        return super().due(now, limit)


def test_a_deadline_passed_before_the_outage_but_not_yet_swept_is_not_moved(clock):
    store = _FailsOnce()
    registry = make_registry(store, clock)
    register(registry)
    sweep_until(registry, clock, T0 + STALE_AFTER - 1)
    clock.advance(1)
    store.fail = True
    with pytest.raises(StoreUnavailable):  # the sweep at T0 + 90 noted, then failed
        registry.sweep()

    # From T0 + 90 to T0 + 190: the STALE deadline (T0 + 90) had passed, the DEAD one not.
    [stale] = outage(registry, clock, 100)
    assert stale.at == T0 + STALE_AFTER
    [dead] = sweep_until(registry, clock, T0 + STALE_AFTER + DEAD_AFTER + 100)
    assert dead.at == T0 + STALE_AFTER + DEAD_AFTER + 100


@pytest.mark.parametrize("gap", [2 * INTERVAL, 1.5 * INTERVAL])
def test_a_pause_of_at_most_twice_the_interval_is_not_an_outage(registry, clock, watch, gap):
    register(registry)
    sweep_until(registry, clock, T0 + STALE_AFTER - 1)
    [stale] = outage(registry, clock, gap)
    assert stale.at == T0 + STALE_AFTER
    assert watch.outages == []


def test_a_pause_just_over_twice_the_interval_is_an_outage(registry, clock, watch):
    register(registry)
    sweep_until(registry, clock, T0 + STALE_AFTER - 1)
    assert outage(registry, clock, 2 * INTERVAL + 0.01) == []
    assert watch.outages == [Outage(T0 + STALE_AFTER - 1, T0 + STALE_AFTER + 1.01)]


class _HeartbeatRacesThePostpone(MemoryAgentStore):
    """A heartbeat lands after the sweep read the deadline, before it postponed it."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.postponed: list[str] = []

    def postpone(self, agent_id, expected_deadline, deadline, grace_through):
        self.postponed.append(agent_id)
        self.heartbeat(agent_id, self.clock.now, self.clock.now + STALE_AFTER)
        return super().postpone(agent_id, expected_deadline, deadline, grace_through)


def test_a_heartbeat_during_a_postpone_wins(clock):
    store = _HeartbeatRacesThePostpone(clock)
    registry = make_registry(store, clock)
    register(registry)
    sweep_until(registry, clock, T0 + 50)
    outage(registry, clock, 100)  # deadline T0 + 90 is due, moved to T0 + 240

    assert store.postponed == ["agent-1"]
    agent = registry.get("agent-1")
    assert (agent.last_heartbeat_at, agent.deadline) == (T0 + 150, T0 + 150 + STALE_AFTER)
    assert agent.grace_through is None  # the postpone did not apply


def test_an_outage_is_forgotten_once_no_deadline_it_moved_is_left(registry, store, clock):
    register(registry)
    sweep_until(registry, clock, T0 + 100)
    outage(registry, clock, 60)
    assert store.note_sweep(clock.now, 2 * INTERVAL, KEPT_OUTAGES).recent != []
    sweep_until(registry, clock, T0 + 160 + DEAD_AFTER + 1)
    assert store.note_sweep(clock.now, 2 * INTERVAL, KEPT_OUTAGES).recent == []
    assert state(registry) == (DEAD, T0 + STALE_AFTER + DEAD_AFTER + 60)


def test_one_warning_and_one_info_per_outage(registry, clock, watch, caplog):
    register(registry)
    sweep_until(registry, clock, T0 + 10)
    with caplog.at_level(logging.INFO, logger="agent_registry.core.grace"):
        outage(registry, clock, 30)
        sweep_until(registry, clock, T0 + 60)
    levels = [record.levelno for record in caplog.records]
    assert levels == [logging.WARNING, logging.INFO]
    assert [record.outage_seconds for record in caplog.records] == [30.0, 30.0]
    assert caplog.records[1].grace_until == "2026-03-11T10:17:40.000Z"  # T0 + 40 + 90
    assert watch.outages == [Outage(T0 + 10, T0 + 40)]


def test_no_warning_when_the_store_outage_was_already_logged(store, clock, caplog):
    registry = make_registry(store, clock, Watch(reported=True))
    register(registry)
    sweep_until(registry, clock, T0 + 10)
    with caplog.at_level(logging.INFO, logger="agent_registry.core.grace"):
        outage(registry, clock, 30)
    assert [record.levelno for record in caplog.records] == [logging.INFO]

"""Registry: registration, heartbeats, reads and the lifecycle sweep, on a fake clock."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from agent_registry.core.agent_query import AgentQuery
from agent_registry.core.models import Agent, AgentState, Transition
from agent_registry.core.ports import NoObserver, Observers
from agent_registry.core.registry import Lifecycle, Registration, Registry
from agent_registry.errors import AgentNotFound, AgentNotRegistered
from agent_registry.stores.memory import MemoryAgentStore
from harness.clock import T0

STALE_AFTER = 90.0
DEAD_AFTER = 300.0
TINY = 0.001

LIVE, STALE, DEAD = AgentState.LIVE, AgentState.STALE, AgentState.DEAD


def listed(registry: Registry, **where: Any) -> list[str]:
    """The ids ``list`` answers for the query these filters make."""
    return [agent.id for agent in registry.list(AgentQuery(**where))]


@pytest.fixture
def store() -> MemoryAgentStore:
    return MemoryAgentStore()


@pytest.fixture
def registry(store, clock) -> Registry:
    return Registry(store, clock, Lifecycle(stale_after=STALE_AFTER, dead_after=DEAD_AFTER))


def register(registry: Registry, agent_id: str = "agent-1", group: str = "group-a", **fields):
    return registry.register(Registration(id=agent_id, group=group, **fields))


def frozen(agent: Agent) -> Agent:
    """A copy of an agent, to compare later against the stored one."""
    return replace(agent, route_ids=list(agent.route_ids), capabilities=dict(agent.capabilities))


# --- registration ------------------------------------------------------------------------


def test_new_registration_is_live_with_all_times_at_now_and_defaults(registry, clock):
    agent, created = register(registry, "order-svc-7f9c", "order-service-prod")

    assert created is True
    assert agent.id == "order-svc-7f9c"
    assert agent.group == "order-service-prod"
    assert agent.name == "order-svc-7f9c"  # name defaults to the id
    assert agent.version is None
    assert agent.route_ids == []
    assert agent.capabilities == {}
    assert agent.state is LIVE
    assert agent.registered_at == agent.last_heartbeat_at == agent.state_changed_at == T0
    assert agent.deadline == T0 + STALE_AFTER
    assert registry.get("order-svc-7f9c") == agent


def test_registration_keeps_the_given_fields(registry):
    agent, _ = register(
        registry,
        name="Order Service",
        version="3.2.1",
        route_ids=("route-a", "route-b"),
        capabilities={"deep-trace": True},
    )

    assert agent.name == "Order Service"
    assert agent.version == "3.2.1"
    assert agent.route_ids == ["route-a", "route-b"]
    assert agent.capabilities == {"deep-trace": True}


def test_reregistration_keeps_registered_at_and_replaces_every_other_field(registry, clock):
    register(
        registry,
        name="Old name",
        version="1.0",
        route_ids=("old-route",),
        capabilities={"replay": True},
    )
    clock.advance(42)

    agent, created = register(registry, version="2.0", route_ids=("new-route",))

    assert created is False
    assert agent.registered_at == T0
    assert agent.last_heartbeat_at == T0 + 42
    assert agent.name == "agent-1"  # replaced by the default, not kept
    assert agent.version == "2.0"
    assert agent.route_ids == ["new-route"]
    assert agent.capabilities == {}
    assert registry.get("agent-1") == agent


def test_reregistration_without_version_clears_it(registry, clock):
    register(registry, version="1.0")
    clock.advance(1)

    agent, _ = register(registry)

    assert agent.version is None


def test_reregistration_can_move_the_agent_to_another_group(registry, store, clock):
    register(registry, "agent-1", "group-a")
    register(registry, "agent-2", "group-a")
    clock.advance(5)

    agent, created = register(registry, "agent-1", "group-b")

    assert created is False
    assert agent.group == "group-b"
    assert [a.id for a in registry.list(AgentQuery(group="group-a"))] == ["agent-2"]
    assert [a.id for a in registry.list(AgentQuery(group="group-b"))] == ["agent-1"]
    assert store.live_ids("group-a") == ["agent-2"]
    assert store.live_ids("group-b") == ["agent-1"]
    assert store.live_ids() == ["agent-1", "agent-2"]


def test_moving_the_last_member_away_leaves_the_old_group_empty(registry, store, clock):
    register(registry, "agent-1", "group-a")
    clock.advance(5)
    register(registry, "agent-1", "group-b")

    assert registry.list(AgentQuery(group="group-a")) == []
    assert store.live_ids("group-a") == []


def test_reregistration_restarts_the_heartbeat_clock(registry, clock):
    register(registry)
    clock.advance(60)
    register(registry)

    assert registry.sweep(now=T0 + 60 + STALE_AFTER - TINY) == []
    assert registry.get("agent-1").state is LIVE
    assert registry.sweep(now=T0 + 60 + STALE_AFTER) == [
        Transition("agent-1", LIVE, STALE, T0 + 60 + STALE_AFTER)
    ]


def test_reregistering_a_live_agent_keeps_state_changed_at(registry, clock):
    register(registry)
    clock.advance(30)

    agent, _ = register(registry)

    assert agent.state is LIVE
    assert agent.state_changed_at == T0
    assert agent.last_heartbeat_at == T0 + 30


@pytest.mark.parametrize(
    ("pause", "state_before"),
    [(STALE_AFTER + 10, STALE), (STALE_AFTER + DEAD_AFTER + 10, DEAD)],
    ids=["from-stale", "from-dead"],
)
def test_reregistration_revives_to_live_dated_at_that_moment(registry, clock, pause, state_before):
    register(registry, version="1.0")
    clock.advance(pause)
    registry.sweep()
    assert registry.get("agent-1").state is state_before

    agent, created = register(registry, version="2.0")

    assert created is False
    assert agent.state is LIVE
    assert agent.state_changed_at == T0 + pause
    assert agent.last_heartbeat_at == T0 + pause
    assert agent.registered_at == T0
    assert agent.version == "2.0"
    assert registry.list(AgentQuery(states=[LIVE])) == [agent]
    # and it goes STALE again, timed from the re-registration
    assert registry.sweep(now=T0 + pause + STALE_AFTER - TINY) == []
    assert registry.sweep(now=T0 + pause + STALE_AFTER) == [
        Transition("agent-1", LIVE, STALE, T0 + pause + STALE_AFTER)
    ]


# --- heartbeat ---------------------------------------------------------------------------


def test_heartbeat_records_the_time_and_moves_the_stale_deadline(registry, clock):
    register(registry)
    clock.advance(89)
    registry.heartbeat("agent-1")

    agent = registry.get("agent-1")
    assert agent.last_heartbeat_at == T0 + 89
    assert agent.state is LIVE
    assert agent.state_changed_at == T0  # still LIVE: no transition happened
    assert registry.sweep(now=T0 + STALE_AFTER) == []
    assert registry.sweep(now=T0 + 89 + STALE_AFTER - TINY) == []
    assert registry.sweep(now=T0 + 89 + STALE_AFTER) == [
        Transition("agent-1", LIVE, STALE, T0 + 89 + STALE_AFTER)
    ]


@pytest.mark.parametrize(
    ("pause", "state_before"),
    [(STALE_AFTER + 10, STALE), (STALE_AFTER + DEAD_AFTER + 10, DEAD)],
    ids=["from-stale", "from-dead"],
)
def test_heartbeat_revives_to_live_dated_at_that_moment(registry, clock, pause, state_before):
    register(registry)
    clock.advance(pause)
    registry.sweep()
    assert registry.get("agent-1").state is state_before

    registry.heartbeat("agent-1")

    agent = registry.get("agent-1")
    assert agent.state is LIVE
    assert agent.state_changed_at == T0 + pause
    assert agent.last_heartbeat_at == T0 + pause
    assert agent.registered_at == T0
    assert registry.list(AgentQuery(states=[state_before])) == []
    assert registry.list(AgentQuery(states=[LIVE])) == [agent]
    # the revived agent has a lifecycle again
    assert registry.sweep(now=T0 + pause + STALE_AFTER - TINY) == []
    assert registry.sweep(now=T0 + pause + STALE_AFTER + DEAD_AFTER) == [
        Transition("agent-1", LIVE, STALE, T0 + pause + STALE_AFTER),
        Transition("agent-1", STALE, DEAD, T0 + pause + STALE_AFTER + DEAD_AFTER),
    ]


class RevivalObserver(NoObserver):
    def __init__(self) -> None:
        self.revived_agents: list[tuple[str, float]] = []
        self.transitions: list[Transition] = []

    def revived(self, agent_id: str, at: float) -> None:
        self.revived_agents.append((agent_id, at))

    def transitioned(self, transition: Transition) -> None:
        self.transitions.append(transition)


def test_the_observer_is_told_of_a_revival_by_heartbeat_and_not_of_a_routine_one(store, clock):
    recorder = RevivalObserver()
    both = Observers(NoObserver(), recorder)
    registry = Registry(store, clock, Lifecycle(STALE_AFTER, DEAD_AFTER), both)
    register(registry)
    registry.heartbeat("agent-1")  # LIVE stays LIVE: nothing to tell
    clock.advance(STALE_AFTER + 1)
    registry.sweep()

    registry.heartbeat("agent-1")
    registry.heartbeat("agent-1")

    assert recorder.transitions == [Transition("agent-1", LIVE, STALE, T0 + STALE_AFTER)]
    assert recorder.revived_agents == [("agent-1", T0 + STALE_AFTER + 1)]


def test_heartbeat_of_an_unknown_agent_is_agent_not_registered(registry):
    with pytest.raises(AgentNotRegistered) as raised:
        registry.heartbeat("ghost")

    assert "register" in raised.value.message
    assert registry.list() == []


def test_get_of_an_unknown_agent_is_agent_not_found(registry):
    register(registry)

    with pytest.raises(AgentNotFound):
        registry.get("ghost")


# --- lifecycle boundaries ----------------------------------------------------------------


def test_agent_stays_live_until_just_before_the_stale_deadline(registry, clock):
    register(registry)
    clock.advance(STALE_AFTER - TINY)

    assert registry.sweep() == []
    assert registry.get("agent-1").state is LIVE


def test_agent_goes_stale_exactly_at_last_heartbeat_plus_stale_after(registry, clock):
    register(registry)
    clock.advance(STALE_AFTER)

    assert registry.sweep() == [Transition("agent-1", LIVE, STALE, T0 + STALE_AFTER)]
    agent = registry.get("agent-1")
    assert agent.state is STALE
    assert agent.state_changed_at == T0 + STALE_AFTER
    assert agent.last_heartbeat_at == T0


def test_stale_is_dated_at_the_deadline_when_the_sweep_runs_late(registry, clock):
    register(registry)
    clock.advance(STALE_AFTER + 37.5)

    assert registry.sweep() == [Transition("agent-1", LIVE, STALE, T0 + STALE_AFTER)]
    assert registry.get("agent-1").state_changed_at == T0 + STALE_AFTER


def test_dead_is_timed_from_the_stale_deadline_not_from_the_late_sweep(registry):
    register(registry)
    stale_at = T0 + STALE_AFTER
    registry.sweep(now=stale_at + 50)  # noticed 50 s late

    assert registry.sweep(now=stale_at + DEAD_AFTER - TINY) == []
    assert registry.get("agent-1").state is STALE
    assert registry.sweep(now=stale_at + DEAD_AFTER) == [
        Transition("agent-1", STALE, DEAD, stale_at + DEAD_AFTER)
    ]
    agent = registry.get("agent-1")
    assert agent.state is DEAD
    assert agent.state_changed_at == stale_at + DEAD_AFTER


def test_dead_is_dated_at_the_deadline_when_the_sweep_runs_late(registry):
    register(registry)
    registry.sweep(now=T0 + STALE_AFTER)

    assert registry.sweep(now=T0 + STALE_AFTER + DEAD_AFTER + 12) == [
        Transition("agent-1", STALE, DEAD, T0 + STALE_AFTER + DEAD_AFTER)
    ]
    assert registry.get("agent-1").state_changed_at == T0 + STALE_AFTER + DEAD_AFTER


def test_a_long_pause_passes_stale_and_dead_in_one_sweep(registry, clock):
    register(registry)
    clock.advance(10_000)

    assert registry.sweep() == [
        Transition("agent-1", LIVE, STALE, T0 + STALE_AFTER),
        Transition("agent-1", STALE, DEAD, T0 + STALE_AFTER + DEAD_AFTER),
    ]
    agent = registry.get("agent-1")
    assert agent.state is DEAD
    assert agent.state_changed_at == T0 + STALE_AFTER + DEAD_AFTER


def test_a_pause_between_the_deadlines_goes_stale_only(registry):
    register(registry)

    assert registry.sweep(now=T0 + STALE_AFTER + DEAD_AFTER - TINY) == [
        Transition("agent-1", LIVE, STALE, T0 + STALE_AFTER)
    ]
    assert registry.get("agent-1").state is STALE


def test_each_transition_is_returned_exactly_once_across_sweeps(registry):
    register(registry)

    sweeps = [
        T0 + STALE_AFTER,
        T0 + STALE_AFTER,
        T0 + STALE_AFTER + 1,
        T0 + STALE_AFTER + DEAD_AFTER,
        T0 + STALE_AFTER + DEAD_AFTER,
        T0 + 100_000,
    ]
    results = [registry.sweep(now=now) for now in sweeps]

    assert results == [
        [Transition("agent-1", LIVE, STALE, T0 + STALE_AFTER)],
        [],
        [],
        [Transition("agent-1", STALE, DEAD, T0 + STALE_AFTER + DEAD_AFTER)],
        [],
        [],
    ]
    assert registry.get("agent-1").state_changed_at == T0 + STALE_AFTER + DEAD_AFTER


def test_sweep_transitions_every_due_agent_across_small_batches(registry, clock):
    for index in range(7):
        register(registry, f"agent-{index}")
        clock.advance(1)

    done = registry.sweep(now=T0 + STALE_AFTER + 3, batch=2)

    assert done == [
        Transition(f"agent-{index}", LIVE, STALE, T0 + index + STALE_AFTER) for index in range(4)
    ]
    assert [a.id for a in registry.list(AgentQuery(states=[STALE]))] == [
        f"agent-{i}" for i in range(4)
    ]
    assert [a.id for a in registry.list(AgentQuery(states=[LIVE]))] == [
        f"agent-{i}" for i in range(4, 7)
    ]


def test_sweep_with_nothing_due_returns_nothing_and_changes_nothing(registry, clock):
    register(registry, "agent-1")
    clock.advance(30)
    register(registry, "agent-2", "group-b", version="1.0")
    clock.advance(20)
    registry.heartbeat("agent-1")
    before = [frozen(agent) for agent in registry.list()]

    assert registry.sweep(now=T0 + 79) == []
    assert registry.sweep() == []

    assert registry.list() == before


def test_sweep_of_an_empty_registry_returns_nothing(registry):
    assert registry.sweep(now=T0 + 1_000_000) == []


def test_a_dead_agent_has_no_further_transitions(registry):
    register(registry)
    registry.sweep(now=T0 + STALE_AFTER + DEAD_AFTER)

    agent = registry.get("agent-1")
    assert agent.state is DEAD
    assert agent.deadline is None
    assert registry.sweep(now=T0 + 10 * (STALE_AFTER + DEAD_AFTER)) == []
    assert registry.list(AgentQuery(states=[DEAD])) == [agent]  # DEAD agents are kept and listed


class _HeartbeatRacesTheSweep(MemoryAgentStore):
    """A store in which a heartbeat lands after the sweep read the deadline, right before
    its compare-and-set (as another process or greenlet could do)."""

    def __init__(self, heartbeat_at: float, stale_after: float) -> None:
        super().__init__()
        self.heartbeat_at = heartbeat_at
        self.stale_after = stale_after
        self.attempts: list[tuple[str, float]] = []

    def transition(self, agent_id, expected_deadline, new_state, changed_at, next_deadline):
        self.attempts.append((agent_id, expected_deadline))
        self.heartbeat(agent_id, self.heartbeat_at, self.heartbeat_at + self.stale_after)
        return super().transition(agent_id, expected_deadline, new_state, changed_at, next_deadline)


def test_a_heartbeat_between_due_and_transition_prevents_the_transition(clock):
    store = _HeartbeatRacesTheSweep(heartbeat_at=T0 + 95, stale_after=STALE_AFTER)
    registry = Registry(store, clock, Lifecycle(STALE_AFTER, DEAD_AFTER))
    register(registry)

    assert registry.sweep(now=T0 + 100) == []

    assert store.attempts == [("agent-1", T0 + STALE_AFTER)]  # it did try, with the old one
    agent = registry.get("agent-1")
    assert agent.state is LIVE
    assert agent.state_changed_at == T0
    assert agent.last_heartbeat_at == T0 + 95
    assert agent.deadline == T0 + 95 + STALE_AFTER


def test_store_transition_is_a_compare_and_set_on_the_deadline(registry, store, clock):
    register(registry)
    clock.advance(80)
    registry.heartbeat("agent-1")

    applied = store.transition(
        "agent-1", T0 + STALE_AFTER, STALE, T0 + STALE_AFTER, T0 + STALE_AFTER + DEAD_AFTER
    )

    assert applied is False
    assert registry.get("agent-1").state is LIVE


# --- reads ---------------------------------------------------------------------------------


def test_list_is_ordered_by_code_point_of_the_id(registry):
    ids = ["b", "a_1", "B", "a1", "a:1", "A", "a-1", "a.1", "9", "Z"]
    for agent_id in ids:
        register(registry, agent_id)

    listed = [agent.id for agent in registry.list()]

    assert listed == ["9", "A", "B", "Z", "a-1", "a.1", "a1", "a:1", "a_1", "b"]
    assert listed == sorted(ids, key=lambda text: [ord(c) for c in text])


@pytest.fixture
def fleet(registry, clock):
    """live-1, live-2 (group-b) LIVE; stale-1 STALE; dead-1 DEAD; at T0 + 400."""
    register(registry, "dead-1", "group-a")
    clock.advance(STALE_AFTER + DEAD_AFTER - 100)
    register(registry, "stale-1", "group-a")
    register(registry, "live-1", "group-a")
    register(registry, "live-2", "group-b")
    clock.advance(STALE_AFTER + 10)
    registry.heartbeat("live-1")
    registry.heartbeat("live-2")
    registry.sweep()
    return registry


def test_fleet_fixture_states(fleet):
    assert {agent.id: agent.state for agent in fleet.list()} == {
        "dead-1": DEAD,
        "live-1": LIVE,
        "live-2": LIVE,
        "stale-1": STALE,
    }


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([LIVE], ["live-1", "live-2"]),
        ([STALE], ["stale-1"]),
        ([DEAD], ["dead-1"]),
        ([STALE, DEAD], ["dead-1", "stale-1"]),
        ([LIVE, DEAD], ["dead-1", "live-1", "live-2"]),
        ([LIVE, STALE, DEAD], ["dead-1", "live-1", "live-2", "stale-1"]),
        (None, ["dead-1", "live-1", "live-2", "stale-1"]),
    ],
)
def test_list_filters_by_status(fleet, states, expected):
    assert listed(fleet, states=states) == expected


def test_list_filters_by_group(fleet):
    assert listed(fleet, group="group-a") == [
        "dead-1",
        "live-1",
        "stale-1",
    ]
    assert listed(fleet, group="group-b") == ["live-2"]
    assert fleet.list(AgentQuery(group="no-such-group")) == []


def test_list_combines_group_and_status_filters(fleet):
    assert listed(fleet, states=[LIVE], group="group-a") == ["live-1"]
    assert listed(fleet, states=[STALE, DEAD], group="group-b") == []


def test_list_pages_with_after_and_limit(registry):
    ids = [f"agent-{index:02d}" for index in range(7)]
    for agent_id in reversed(ids):
        register(registry, agent_id)

    pages: list[list[str]] = []
    after = None
    while True:
        page = [agent.id for agent in registry.list(AgentQuery(after=after, limit=3))]
        if not page:
            break
        pages.append(page)
        after = page[-1]

    assert pages == [ids[0:3], ids[3:6], ids[6:7]]


def test_list_after_an_id_that_is_not_registered_starts_at_the_next_one(registry):
    for agent_id in ["a", "c", "e"]:
        register(registry, agent_id)

    assert [a.id for a in registry.list(AgentQuery(after="b"))] == ["c", "e"]
    assert [a.id for a in registry.list(AgentQuery(after=""))] == ["a", "c", "e"]
    assert registry.list(AgentQuery(after="e")) == []
    assert registry.list(AgentQuery(after="z")) == []


def test_list_limit_counts_only_matching_agents(fleet):
    assert listed(fleet, states=[LIVE], limit=1) == ["live-1"]
    assert listed(fleet, states=[LIVE], after="live-1", limit=1) == ["live-2"]
    assert listed(fleet, group="group-a", after="dead-1", limit=5) == [
        "live-1",
        "stale-1",
    ]

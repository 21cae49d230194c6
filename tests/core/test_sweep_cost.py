"""Sweeps cost O(due), not O(fleet): checked by counting the work, never by timing it."""

from __future__ import annotations

from collections import Counter
from functools import total_ordering

from agent_registry.core.commands import Commands, CommandTiming
from agent_registry.core.models import (
    Agent,
    AgentState,
    Command,
    CommandType,
    Delivery,
    Target,
    TargetKind,
)
from agent_registry.core.registry import Lifecycle, Registry
from agent_registry.stores.deadlines import DeadlineIndex
from agent_registry.stores.memory import MemoryAgentStore, MemoryCommandStore
from harness.clock import T0

FLEET = 100_000
STALE_AFTER = 90.0
DEAD_AFTER = 300.0


class CountingAgentStore(MemoryAgentStore):
    """The memory store, counting the calls a sweep makes and how much `due` hands back."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()
        self.due_returned = 0

    def due(self, now, limit):
        self.calls["due"] += 1
        found = super().due(now, limit)
        self.due_returned += len(found)
        return found

    def transition(self, *args):
        self.calls["transition"] += 1
        return super().transition(*args)

    def postpone(self, *args):
        self.calls["postpone"] += 1
        return super().postpone(*args)

    def note_sweep(self, *args):
        self.calls["note_sweep"] += 1
        return super().note_sweep(*args)

    def forget_outages(self, *args):
        self.calls["forget_outages"] += 1
        return super().forget_outages(*args)

    def list(self, *args, **kwargs):
        self.calls["list"] += 1
        return super().list(*args, **kwargs)

    def live_ids(self, *args, **kwargs):
        self.calls["live_ids"] += 1
        return super().live_ids(*args, **kwargs)

    def get(self, agent_id):
        self.calls["get"] += 1
        return super().get(agent_id)

    def get_many(self, agent_ids):
        self.calls["get_many"] += 1
        return super().get_many(agent_ids)


def _agent(agent_id: str, heartbeat_at: float) -> Agent:
    return Agent(
        id=agent_id,
        name=agent_id,
        group="fleet",
        version=None,
        route_ids=[],
        capabilities={},
        state=AgentState.LIVE,
        registered_at=heartbeat_at,
        last_heartbeat_at=heartbeat_at,
        state_changed_at=heartbeat_at,
        deadline=heartbeat_at + STALE_AFTER,
    )


def _big_fleet(clock) -> tuple[Registry, CountingAgentStore]:
    """FLEET agents with heartbeats spread over 30 s after T0 (deadlines T0+90 .. T0+120)."""
    store = CountingAgentStore()
    for number in range(FLEET):
        store.register(_agent(f"agent-{number:06d}", T0 + number * 30.0 / FLEET))
    store.calls.clear()
    return Registry(store, clock, Lifecycle(STALE_AFTER, DEAD_AFTER)), store


def test_a_sweep_with_nothing_due_asks_the_store_once_and_touches_nothing(clock):
    registry, store = _big_fleet(clock)

    assert registry.sweep(now=T0 + STALE_AFTER - 0.001) == []

    assert store.calls == Counter({"due": 1})
    assert store.due_returned == 0
    assert len(store.live_ids()) == FLEET


def test_the_sweep_after_an_outage_postpones_only_what_is_due(clock):
    """Outage grace rewrites nothing at recovery: the first sweep after an outage over the
    whole fleet's deadlines postpones the agents that are due, as a sweep would move them."""
    store = CountingAgentStore()
    for number in range(FLEET):
        store.register(_agent(f"agent-{number:06d}", T0 + number * 30.0 / FLEET))
    registry = Registry(store, clock, Lifecycle(STALE_AFTER, DEAD_AFTER, outage_after=2.0))
    registry.sweep(now=T0 + 1)
    store.calls.clear()
    # Sweeps stop from T0 + 1 to T0 + 90 + 1.5 * 30 / FLEET: two agents came due meanwhile.
    assert registry.sweep(now=T0 + STALE_AFTER + 1.5 * 30.0 / FLEET) == []

    assert store.calls == Counter({"note_sweep": 1, "due": 2, "postpone": 2})
    assert store.calls["postpone"] == store.due_returned
    assert registry.sweep(now=T0 + STALE_AFTER + 2) == []  # the next due are postponed too
    assert len(store.live_ids()) == FLEET


def test_a_sweep_with_a_few_due_does_work_for_those_only(clock):
    registry, store = _big_fleet(clock)
    # the first three agents' deadlines are T0 + 90, + 90.0003, + 90.0006
    now = T0 + STALE_AFTER + 2.5 * 30.0 / FLEET

    done = registry.sweep(now=now)

    assert [t.agent_id for t in done] == ["agent-000000", "agent-000001", "agent-000002"]
    assert store.calls == Counter({"due": 2, "transition": 3})
    assert store.due_returned == 3
    assert len(store.live_ids()) == FLEET - 3


@total_ordering
class CountingKey:
    """A key that counts how often the index hashes or compares it."""

    touched = 0

    def __init__(self, number: int) -> None:
        self.number = number

    def __hash__(self) -> int:
        CountingKey.touched += 1
        return self.number

    def __eq__(self, other: object) -> bool:
        CountingKey.touched += 1
        return isinstance(other, CountingKey) and other.number == self.number

    def __lt__(self, other: CountingKey) -> bool:
        CountingKey.touched += 1
        return self.number < other.number


def test_deadline_index_due_looks_only_at_due_entries():
    index: DeadlineIndex[CountingKey] = DeadlineIndex()
    for number in range(FLEET):
        index.set(CountingKey(number), float(number))
    CountingKey.touched = 0

    assert index.due(now=-1.0, limit=1000) == []
    assert CountingKey.touched == 0

    found = index.due(now=2.0, limit=1000)

    assert [(key.number, when) for key, when in found] == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert CountingKey.touched <= 10 * len(found)


class CountingCommandStore(MemoryCommandStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def due_expiries(self, now, limit):
        self.calls["due_expiries"] += 1
        return super().due_expiries(now, limit)

    def due_purges(self, now, limit):
        self.calls["due_purges"] += 1
        return super().due_purges(now, limit)

    def get(self, command_id):
        self.calls["get"] += 1
        return super().get(command_id)

    def replace_delivery(self, *args):
        self.calls["replace_delivery"] += 1
        return super().replace_delivery(*args)

    def purge(self, command_id):
        self.calls["purge"] += 1
        return super().purge(command_id)


class _NoBus:
    def publish(self, command, agent_ids) -> None:  # pragma: no cover - never sent here
        raise AssertionError("nothing is sent in this test")


def test_expire_and_purge_with_nothing_due_ask_the_store_once(clock):
    how_many = 20_000
    store = CountingCommandStore()
    target = Target(TargetKind.AGENT, "agent-1")
    for number in range(how_many):
        created = T0 + number * 0.001
        command = Command(
            f"command-{number}", CommandType.REPLAY, {}, target, created, created + 60.0
        )
        store.add(command, [Delivery("agent-1")])
    commands = Commands(
        MemoryAgentStore(), store, _NoBus(), clock, CommandTiming(expiry=60.0, retention=3600.0)
    )

    assert commands.expire(now=T0 + 59.999) == 0
    assert commands.purge(now=T0 + 100_000) == 0

    assert store.calls == Counter({"due_expiries": 1, "due_purges": 1})

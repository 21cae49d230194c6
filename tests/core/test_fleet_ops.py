"""Fleet operations in the core, on a fake clock: cancel a command, delete and prune agents."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from agent_registry.core.commands import Commands, CommandTiming
from agent_registry.core.fleet import FleetOperations
from agent_registry.core.models import (
    AckResult,
    AckStatus,
    Agent,
    AgentState,
    Command,
    CommandType,
    Delivery,
    DeliveryStatus,
    Target,
    TargetKind,
)
from agent_registry.core.ports import NoObserver
from agent_registry.core.registry import Lifecycle, Registration, Registry
from agent_registry.errors import (
    AgentNotFound,
    AgentNotRegistered,
    AlreadyAcknowledged,
    CommandCancelled,
    CommandNotFound,
)
from agent_registry.stores.memory import MemoryAgentStore, MemoryCommandStore
from harness.clock import T0

EXPIRY, RETENTION = 60.0, 3600.0
STALE_AFTER, DEAD_AFTER = 90.0, 300.0
DEAD_AT = STALE_AFTER + DEAD_AFTER  # seconds after its last heartbeat that an agent is DEAD

PENDING, DELIVERED = DeliveryStatus.PENDING, DeliveryStatus.DELIVERED
ACKNOWLEDGED, FAILED = DeliveryStatus.ACKNOWLEDGED, DeliveryStatus.FAILED
EXPIRED, CANCELLED = DeliveryStatus.EXPIRED, DeliveryStatus.CANCELLED
SUCCESS, FAILURE = AckResult(AckStatus.SUCCESS), AckResult(AckStatus.FAILURE)


class RecordingBus:
    """The Bus port, recording what the core asks of it."""

    def __init__(self) -> None:
        self.published: list[tuple[str, list[str]]] = []
        # Each publish as the bus saw it: the command (its expiresAt), the targets, sentAt.
        self.batches: list[tuple[Command, list[str], float | None]] = []
        self.cancelled: list[tuple[str, list[str]]] = []
        self.disconnected: list[str] = []

    def publish(
        self, command: Command, agent_ids: Sequence[str], sent_at: float | None = None
    ) -> None:
        self.published.append((command.id, list(agent_ids)))
        self.batches.append((command, list(agent_ids), sent_at))

    def cancel(self, command_id: str, agent_ids: Sequence[str]) -> None:
        self.cancelled.append((command_id, list(agent_ids)))

    def disconnect(self, agent_id: str) -> None:
        self.disconnected.append(agent_id)


class RecordingObserver(NoObserver):
    def __init__(self) -> None:
        self.finished_deliveries: list[tuple[str, Delivery]] = []
        self.deleted_agents: list[str] = []

    def finished(self, command: Command, delivery: Delivery) -> None:
        self.finished_deliveries.append((command.id, delivery))

    def deleted(self, agent: Agent) -> None:
        self.deleted_agents.append(agent.id)


class World:
    """One registry, command service and fleet operations over shared memory stores."""

    def __init__(self, clock, agent_store=None, command_store=None) -> None:
        self.clock = clock
        # (An empty store is falsy: it has a length.)
        self.agent_store = MemoryAgentStore() if agent_store is None else agent_store
        self.command_store = MemoryCommandStore() if command_store is None else command_store
        self.bus = RecordingBus()
        self.observer = RecordingObserver()
        self.pauses = 0
        self.registry = Registry(
            self.agent_store, clock, Lifecycle(STALE_AFTER, DEAD_AFTER), self.observer
        )
        self.commands = Commands(
            self.agent_store,
            self.command_store,
            self.bus,
            clock,
            CommandTiming(EXPIRY, RETENTION),
            self.observer,
        )
        self.fleet = FleetOperations(
            self.agent_store, self.commands, self.bus, clock, self.observer, pause=self._pause
        )

    def _pause(self) -> None:
        self.pauses += 1

    def register(self, *agent_ids: str, group: str = "group-a") -> None:
        for agent_id in agent_ids:
            self.registry.register(Registration(id=agent_id, group=group))

    def send(self, target: Target) -> str:
        return self.commands.send(target, CommandType.DEEP_TRACE, {}).command.id

    def statuses(self, command_id: str) -> dict[str, DeliveryStatus]:
        return {d.agent_id: d.status for d in self.commands.get(command_id).deliveries}


@pytest.fixture
def world(clock) -> World:
    return World(clock)


GROUP_A = Target(TargetKind.GROUP, "group-a")


# --- cancel -----------------------------------------------------------------------------


def test_cancel_makes_every_open_delivery_cancelled_and_leaves_final_ones(world, clock):
    world.register("a1", "a2", "a3", "a4")
    command_id = world.send(GROUP_A)
    world.commands.mark_delivered("a2", [command_id])
    world.commands.acknowledge("a3", command_id, SUCCESS)
    world.commands.acknowledge("a4", command_id, FAILURE)
    clock.advance(5)

    snapshot = world.commands.cancel(command_id, "alice")

    assert {d.agent_id: d.status for d in snapshot.deliveries} == {
        "a1": CANCELLED,
        "a2": CANCELLED,
        "a3": ACKNOWLEDGED,
        "a4": FAILED,
    }
    by_agent = {d.agent_id: d for d in snapshot.deliveries}
    assert by_agent["a1"].delivered_at is None  # tells a never-written cancel apart
    assert by_agent["a2"].delivered_at == T0  # written before it was cancelled
    assert snapshot.summary()["cancelled"] == 2
    assert world.bus.cancelled == [(command_id, ["a1", "a2"])]
    cancelled = [d.agent_id for _, d in world.observer.finished_deliveries if d.status is CANCELLED]
    assert cancelled == ["a1", "a2"]


def test_cancelling_again_changes_nothing_and_sends_no_event(world):
    world.register("a1")
    command_id = world.send(GROUP_A)
    first = world.commands.cancel(command_id)
    finished = len(world.observer.finished_deliveries)

    again = world.commands.cancel(command_id)

    assert again == first
    assert world.bus.cancelled == [(command_id, ["a1"])]
    assert len(world.observer.finished_deliveries) == finished


def test_cancelling_a_command_whose_deliveries_are_all_final_changes_nothing(world, clock):
    world.register("a1", "a2")
    command_id = world.send(GROUP_A)
    world.commands.acknowledge("a1", command_id, SUCCESS)
    clock.advance(EXPIRY)
    world.commands.expire()
    before = world.commands.get(command_id)

    assert world.commands.cancel(command_id) == before
    assert world.bus.cancelled == []


def test_cancelling_an_unknown_command_is_command_not_found(world):
    with pytest.raises(CommandNotFound):
        world.commands.cancel("no-such-command")


@pytest.mark.parametrize("result", [SUCCESS, FAILURE], ids=["success", "failure"])
def test_an_ack_of_a_cancelled_delivery_is_command_cancelled(world, result):
    world.register("a1")
    command_id = world.send(GROUP_A)
    world.commands.cancel(command_id)

    with pytest.raises(CommandCancelled):
        world.commands.acknowledge("a1", command_id, result)
    assert world.statuses(command_id) == {"a1": CANCELLED}


def test_an_ack_after_expiry_of_a_cancelled_delivery_is_still_command_cancelled(world, clock):
    world.register("a1")
    command_id = world.send(GROUP_A)
    world.commands.cancel(command_id)
    clock.advance(EXPIRY + 1)
    world.commands.expire()

    with pytest.raises(CommandCancelled):
        world.commands.acknowledge("a1", command_id, SUCCESS)
    assert world.statuses(command_id) == {"a1": CANCELLED}  # expiry left it alone


def test_an_acknowledged_delivery_stays_acknowledged_after_a_cancel(world):
    world.register("a1", "a2")
    command_id = world.send(GROUP_A)
    world.commands.acknowledge("a1", command_id, SUCCESS)
    world.commands.cancel(command_id)

    assert world.commands.acknowledge("a1", command_id, SUCCESS).status is ACKNOWLEDGED
    with pytest.raises(AlreadyAcknowledged):
        world.commands.acknowledge("a1", command_id, FAILURE)


def test_a_cancelled_command_is_purged_after_retention_from_the_cancel(world, clock):
    world.register("a1")
    command_id = world.send(GROUP_A)
    clock.advance(10)
    world.commands.cancel(command_id)

    clock.advance(RETENTION - 0.001)
    assert world.commands.purge() == 0
    clock.advance(0.001)
    assert world.commands.purge() == 1
    with pytest.raises(CommandNotFound):
        world.commands.get(command_id)


def test_a_cancel_that_loses_every_race_answers_the_current_command(world):
    """An ack lands between the cancel's read and its compare-and-set: nothing is cancelled,
    nothing announced, and the answer shows the ack."""
    world.register("a1")
    command_id = world.send(GROUP_A)
    store = world.command_store
    real = store.cancel_deliveries

    def ack_first(
        cid: str, agent_ids: Sequence[str], retain_until: float, halt: bool = False
    ) -> list[Delivery]:
        world.commands.acknowledge("a1", command_id, SUCCESS)
        return real(cid, agent_ids, retain_until, halt)

    store.cancel_deliveries = ack_first  # type: ignore[method-assign]
    snapshot = world.commands.cancel(command_id)

    assert {d.agent_id: d.status for d in snapshot.deliveries} == {"a1": ACKNOWLEDGED}
    assert world.bus.cancelled == []


def test_two_processes_cancelling_at_once_cancel_each_delivery_once(clock):
    """Two cores sharing one store (as two workers share Redis): each delivery is reported
    and announced by exactly one of them."""
    first = World(clock)
    second = World(clock, first.agent_store, first.command_store)
    first.register("a1", "a2", "a3")
    command_id = first.send(GROUP_A)
    real = first.command_store.cancel_deliveries
    calls = 0

    def interleaved(
        cid: str, agent_ids: Sequence[str], retain_until: float, halt: bool = False
    ) -> list[Delivery]:
        nonlocal calls
        calls += 1
        if calls == 1:  # the first process read the command; the second cancels a2 meanwhile
            real(cid, ["a2"], retain_until)
            second.commands.cancel_for_agent("a2")
        return real(cid, agent_ids, retain_until, halt)

    first.command_store.cancel_deliveries = interleaved  # type: ignore[method-assign]
    first.commands.cancel(command_id)

    assert first.statuses(command_id) == {"a1": CANCELLED, "a2": CANCELLED, "a3": CANCELLED}
    assert first.bus.cancelled == [(command_id, ["a1", "a3"])]
    reported = [d.agent_id for _, d in first.observer.finished_deliveries]
    assert sorted(reported) == ["a1", "a3"]


# --- delete -----------------------------------------------------------------------------


def test_delete_removes_the_agent_cancels_its_open_deliveries_and_ends_its_stream(world):
    world.register("a1", "a2")
    group_command = world.send(GROUP_A)
    acked = world.send(Target(TargetKind.AGENT, "a1"))
    world.commands.acknowledge("a1", acked, SUCCESS)

    deleted = world.fleet.delete("a1", "alice")

    assert deleted.id == "a1"
    with pytest.raises(AgentNotFound):
        world.registry.get("a1")
    assert [agent.id for agent in world.registry.list()] == ["a2"]
    assert world.registry.counts()[AgentState.LIVE] == 1
    assert world.statuses(group_command) == {"a1": CANCELLED, "a2": PENDING}
    assert world.statuses(acked) == {"a1": ACKNOWLEDGED}  # final: left alone
    assert world.bus.disconnected == ["a1"]
    assert world.bus.cancelled == []  # its stream is ending: no cancel event for it
    assert world.observer.deleted_agents == ["a1"]


def test_after_a_delete_a_heartbeat_is_agent_not_registered_and_sends_miss_it(world):
    world.register("a1", "a2")
    world.fleet.delete("a1")

    with pytest.raises(AgentNotRegistered):
        world.registry.heartbeat("a1")
    with pytest.raises(AgentNotFound):
        world.send(Target(TargetKind.AGENT, "a1"))
    command_id = world.send(GROUP_A)
    assert world.statuses(command_id) == {"a2": PENDING}


def test_deleting_an_unknown_agent_is_agent_not_found_and_only_once(world):
    world.register("a1")
    world.fleet.delete("a1")
    with pytest.raises(AgentNotFound):
        world.fleet.delete("a1")
    with pytest.raises(AgentNotFound):
        world.fleet.delete("nobody")
    assert world.observer.deleted_agents == ["a1"]


def test_a_deleted_agent_registers_again_as_new_with_a_newer_generation(world):
    world.register("a1")
    old = world.registry.get("a1").generation
    world.fleet.delete("a1")
    agent, created = world.registry.register(Registration(id="a1", group="group-b"))
    assert created is True
    assert agent.generation > old
    assert (agent.group, agent.registered_at) == ("group-b", T0)


def test_a_command_whose_last_delivery_is_cancelled_by_a_delete_is_purged(world, clock):
    world.register("a1")
    command_id = world.send(Target(TargetKind.AGENT, "a1"))
    clock.advance(10)
    world.fleet.delete("a1")
    assert world.statuses(command_id) == {"a1": CANCELLED}

    clock.advance(RETENTION)
    assert world.commands.purge() == 1


# --- prune ------------------------------------------------------------------------------


def go_dead(world: World, *agent_ids: str) -> None:
    """Let the agents' clocks run out and sweep them DEAD."""
    world.clock.advance(DEAD_AT)
    world.registry.sweep()
    for agent_id in agent_ids:
        assert world.registry.get(agent_id).state is AgentState.DEAD


def test_prune_deletes_the_agents_dead_for_long_enough(world, clock):
    world.register("old-1", "old-2")
    clock.advance(100)
    world.register("young")
    go_dead(world, "old-1", "old-2")
    clock.advance(100)
    world.register("live")
    # old-* went DEAD at T0 + 390 and young at T0 + 490; it is now T0 + 590 + 100.
    command_id = world.send(Target(TargetKind.AGENT, "old-1"))
    clock.advance(100)
    world.registry.sweep()

    assert world.fleet.prune(dead_for=250) == 2

    assert [agent.id for agent in world.registry.list()] == ["live", "young"]
    assert world.statuses(command_id) == {"old-1": CANCELLED}
    assert sorted(world.bus.disconnected) == ["old-1", "old-2"]
    assert sorted(world.observer.deleted_agents) == ["old-1", "old-2"]
    assert world.fleet.prune(dead_for=250) == 0


def test_prune_with_no_minimum_deletes_every_dead_agent_and_nothing_else(world, clock):
    world.register("d1", "d2")
    go_dead(world, "d1", "d2")
    world.register("live")
    clock.advance(STALE_AFTER)
    world.registry.sweep()  # live is STALE now: not DEAD, so it stays

    assert world.fleet.prune(dead_for=0) == 2
    assert [(a.id, a.state) for a in world.registry.list()] == [("live", AgentState.STALE)]


def test_the_dead_for_boundary_is_inclusive(world, clock):
    world.register("d1")
    go_dead(world, "d1")  # DEAD at exactly T0 + DEAD_AT, which is now
    assert world.fleet.prune(dead_for=0.001) == 0
    clock.advance(0.001)
    assert world.fleet.prune(dead_for=0.001) == 1


def test_an_agent_that_came_back_is_not_pruned(world, clock):
    world.register("back", "gone")
    go_dead(world, "back", "gone")
    clock.advance(10)
    world.registry.heartbeat("back")

    assert world.fleet.prune(dead_for=0) == 1
    assert [agent.id for agent in world.registry.list()] == ["back"]


def test_prune_works_in_batches_and_pauses_between_them(world):
    ids = [f"d{n:04d}" for n in range(1203)]
    world.register(*ids)
    go_dead(world)

    assert world.fleet.prune(dead_for=0, batch=500) == 1203
    assert world.registry.list() == []
    assert world.pauses == 3  # 500 + 500 + 203


def test_prune_reads_only_the_dead_agents_it_removes(world, clock):
    """O(due): with a large LIVE fleet, a prune asks the store about DEAD agents only."""
    world.register("d1", "d2")
    go_dead(world)
    world.register(*(f"live-{n:05d}" for n in range(5000)))
    asked: list[str] = []
    real_delete = world.agent_store.delete

    def delete(agent_id: str, dead_before: float | None = None) -> Agent | None:
        asked.append(agent_id)
        return real_delete(agent_id, dead_before)

    world.agent_store.delete = delete  # type: ignore[method-assign]
    assert world.fleet.prune(dead_for=0) == 2
    assert asked == ["d1", "d2"]


def test_two_processes_pruning_at_once_delete_each_agent_once(clock):
    first = World(clock)
    second = World(clock, first.agent_store, first.command_store)
    first.register("d1", "d2", "d3")
    go_dead(first)
    store = first.agent_store
    real_dead = store.dead
    raced = False

    def listed_then_raced(before: float, limit: int) -> list[str]:
        nonlocal raced
        due = real_dead(before, limit)
        if due and not raced:
            raced = True  # the other worker deletes them all after this one listed them
            assert second.fleet.prune(dead_for=0) == 3
        return due

    store.dead = listed_then_raced  # type: ignore[method-assign]
    assert first.fleet.prune(dead_for=0) == 0
    assert second.observer.deleted_agents == ["d1", "d2", "d3"]
    assert first.observer.deleted_agents == []

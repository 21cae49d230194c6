"""Commands: fan-out, delivery tracking, acknowledgement, expiry and retention."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest

from agent_registry.core.agent_query import AgentQuery
from agent_registry.core.commands import Commands, CommandTiming
from agent_registry.core.models import (
    AckResult,
    AckStatus,
    AgentState,
    Command,
    CommandSnapshot,
    CommandType,
    Delivery,
    DeliveryStatus,
    Target,
    TargetKind,
)
from agent_registry.core.registry import Lifecycle, Registration, Registry
from agent_registry.errors import (
    AgentNotFound,
    AlreadyAcknowledged,
    CommandExpired,
    CommandNotFound,
    NoLiveTargets,
)
from agent_registry.stores.memory import MemoryAgentStore, MemoryCommandStore
from harness.clock import T0

EXPIRY = 60.0
RETENTION = 3600.0
STALE_AFTER = 90.0
DEAD_AFTER = 300.0
TINY = 0.001

PENDING = DeliveryStatus.PENDING
DELIVERED = DeliveryStatus.DELIVERED
ACKNOWLEDGED = DeliveryStatus.ACKNOWLEDGED
FAILED = DeliveryStatus.FAILED
EXPIRED = DeliveryStatus.EXPIRED

SUCCESS = AckResult(AckStatus.SUCCESS)
FAILURE = AckResult(AckStatus.FAILURE)

ALL = Target(TargetKind.ALL)


def agent(agent_id: str) -> Target:
    return Target(TargetKind.AGENT, agent_id)


def group(name: str) -> Target:
    return Target(TargetKind.GROUP, name)


class RecordingBus:
    """Our own Bus port, recording what the core publishes."""

    def __init__(self) -> None:
        self.published: list[tuple[Command, list[str]]] = []

    def publish(self, command: Command, agent_ids: Sequence[str]) -> None:
        self.published.append((command, list(agent_ids)))


@pytest.fixture
def agent_store() -> MemoryAgentStore:
    return MemoryAgentStore()


@pytest.fixture
def registry(agent_store, clock) -> Registry:
    return Registry(agent_store, clock, Lifecycle(STALE_AFTER, DEAD_AFTER))


@pytest.fixture
def bus() -> RecordingBus:
    return RecordingBus()


@pytest.fixture
def commands(agent_store, bus, clock) -> Commands:
    return Commands(agent_store, MemoryCommandStore(), bus, clock, CommandTiming(EXPIRY, RETENTION))


def register(registry: Registry, *agent_ids: str, group_name: str = "group-a") -> None:
    for agent_id in agent_ids:
        registry.register(Registration(id=agent_id, group=group_name))


def statuses(snapshot: CommandSnapshot) -> dict[str, DeliveryStatus]:
    return {delivery.agent_id: delivery.status for delivery in snapshot.deliveries}


def delivery_of(commands: Commands, command_id: str, agent_id: str) -> Delivery:
    [found] = [d for d in commands.get(command_id).deliveries if d.agent_id == agent_id]
    return found


def assert_summary_matches_deliveries(snapshot: CommandSnapshot) -> None:
    summary = snapshot.summary()
    counted = {status: 0 for status in DeliveryStatus}
    for delivery in snapshot.deliveries:
        counted[delivery.status] += 1
    assert summary == {
        "targets": len(snapshot.deliveries),
        "pending": counted[PENDING],
        "delivered": counted[DELIVERED],
        "acknowledged": counted[ACKNOWLEDGED],
        "failed": counted[FAILED],
        "expired": counted[EXPIRED],
        "cancelled": counted[DeliveryStatus.CANCELLED],
    }
    assert sum(value for key, value in summary.items() if key != "targets") == summary["targets"]


@pytest.fixture
def mixed_fleet(registry, clock):
    """In group-a: a-live LIVE, a-stale STALE, a-dead DEAD; in group-b: b-live LIVE.

    The clock ends at T0 + 400; every agent registered at or after T0.
    """
    register(registry, "a-dead")
    clock.advance(STALE_AFTER + DEAD_AFTER - 100)  # T0 + 290
    register(registry, "a-stale", "a-live")
    register(registry, "b-live", group_name="group-b")
    clock.advance(STALE_AFTER + 20)  # T0 + 400
    registry.heartbeat("a-live")
    registry.heartbeat("b-live")
    registry.sweep()
    assert {a.id: a.state for a in registry.list()} == {
        "a-dead": AgentState.DEAD,
        "a-live": AgentState.LIVE,
        "a-stale": AgentState.STALE,
        "b-live": AgentState.LIVE,
    }
    return registry


# --- send: fan-out and targets -------------------------------------------------------------


def test_send_to_a_group_has_one_command_id_and_one_pending_delivery_per_target_sorted(
    registry, commands, clock
):
    register(registry, "c-agent", "a-agent", "b-agent")

    sent = commands.send(group("group-a"), CommandType.DEEP_TRACE, {"depth": 3})

    command = sent.command
    assert uuid.UUID(command.id).version == 7
    assert command.type is CommandType.DEEP_TRACE
    assert command.payload == {"depth": 3}
    assert command.target == group("group-a")
    assert command.created_at == T0
    assert command.expires_at == T0 + EXPIRY
    assert sent.deliveries == [
        Delivery("a-agent"),
        Delivery("b-agent"),
        Delivery("c-agent"),
    ]
    assert all(d.delivered_at is None and d.result is None for d in sent.deliveries)
    assert sent.summary() == {
        "targets": 3,
        "pending": 3,
        "delivered": 0,
        "acknowledged": 0,
        "failed": 0,
        "expired": 0,
        "cancelled": 0,
    }
    stored = commands.get(command.id)
    assert stored.command == command
    assert stored.deliveries == sent.deliveries


def test_each_send_gets_its_own_command_id(registry, commands):
    register(registry, "a-agent")

    first = commands.send(agent("a-agent"), CommandType.REPLAY, {})
    second = commands.send(agent("a-agent"), CommandType.REPLAY, {})

    assert first.command.id != second.command.id


def test_summary_stays_consistent_with_deliveries_at_every_step(registry, commands, clock):
    register(registry, "a1", "a2", "a3", "a4", "a5")
    sent = commands.send(group("group-a"), CommandType.CONFIG_UPDATE, {"level": "debug"})
    command_id = sent.command.id
    steps = [
        lambda: commands.mark_delivered("a1", [command_id]),
        lambda: commands.mark_delivered("a2", [command_id]),
        lambda: commands.mark_delivered("a3", [command_id]),
        lambda: commands.acknowledge("a1", command_id, SUCCESS),
        lambda: commands.acknowledge("a2", command_id, FAILURE),
        lambda: commands.acknowledge("a4", command_id, SUCCESS),
        lambda: commands.expire(now=T0 + EXPIRY),
    ]
    summaries = [commands.get(command_id).summary()]
    for step in steps:
        clock.advance(1)
        step()
        snapshot = commands.get(command_id)
        assert_summary_matches_deliveries(snapshot)
        summaries.append(snapshot.summary())

    keys = ("pending", "delivered", "acknowledged", "failed", "expired")
    assert [tuple(s[k] for k in keys) for s in summaries] == [
        (5, 0, 0, 0, 0),
        (4, 1, 0, 0, 0),
        (3, 2, 0, 0, 0),
        (2, 3, 0, 0, 0),
        (2, 2, 1, 0, 0),
        (2, 1, 1, 1, 0),
        (1, 1, 2, 1, 0),
        (0, 0, 2, 1, 2),
    ]
    assert all(s["targets"] == 5 for s in summaries)
    assert statuses(commands.get(command_id)) == {
        "a1": ACKNOWLEDGED,
        "a2": FAILED,
        "a3": EXPIRED,
        "a4": ACKNOWLEDGED,
        "a5": EXPIRED,
    }


def test_send_to_a_group_targets_only_its_live_agents(mixed_fleet, commands):
    sent = commands.send(group("group-a"), CommandType.DEEP_TRACE, {})

    assert [d.agent_id for d in sent.deliveries] == ["a-live"]
    assert sent.command.target == Target(TargetKind.GROUP, "group-a")


def test_send_to_all_targets_every_live_agent(mixed_fleet, commands):
    sent = commands.send(ALL, CommandType.DEEP_TRACE, {})

    assert [d.agent_id for d in sent.deliveries] == ["a-live", "b-live"]
    assert sent.command.target == Target(TargetKind.ALL, None)


def test_send_to_a_group_without_live_agents_is_no_live_targets(
    mixed_fleet, registry, commands, bus, clock
):
    register(registry, "c-stale", group_name="group-c")
    registry.sweep(now=clock() + STALE_AFTER)  # a-live, b-live and c-stale all go STALE
    assert registry.list(AgentQuery(states=[AgentState.LIVE])) == []

    for target in (group("group-c"), group("no-such-group"), ALL):
        with pytest.raises(NoLiveTargets):
            commands.send(target, CommandType.REPLAY, {})

    assert bus.published == []
    assert len(commands.store) == 0


def test_send_to_all_with_no_agents_at_all_is_no_live_targets(commands, bus):
    with pytest.raises(NoLiveTargets):
        commands.send(ALL, CommandType.REPLAY, {})
    assert bus.published == []


@pytest.mark.parametrize("agent_id", ["a-live", "a-stale", "a-dead"])
def test_send_to_one_agent_works_in_any_state(mixed_fleet, commands, bus, agent_id):
    sent = commands.send(agent(agent_id), CommandType.REPLAY, {"from": 1})

    assert sent.deliveries == [Delivery(agent_id)]
    assert sent.command.target == Target(TargetKind.AGENT, agent_id)
    assert bus.published == [(sent.command, [agent_id])]


def test_send_to_an_unknown_agent_is_agent_not_found_and_sends_nothing(registry, commands, bus):
    register(registry, "a-agent")

    with pytest.raises(AgentNotFound):
        commands.send(agent("ghost"), CommandType.REPLAY, {})

    assert bus.published == []
    assert len(commands.store) == 0


def test_the_bus_receives_exactly_the_target_ids_once_per_send(mixed_fleet, commands, bus):
    first = commands.send(ALL, CommandType.DEEP_TRACE, {})
    second = commands.send(group("group-a"), CommandType.REPLAY, {})
    third = commands.send(agent("a-dead"), CommandType.CONFIG_UPDATE, {})

    assert bus.published == [
        (first.command, ["a-live", "b-live"]),
        (second.command, ["a-live"]),
        (third.command, ["a-dead"]),
    ]


# --- delivery transitions ------------------------------------------------------------------


@pytest.fixture
def one(registry, commands):
    """One command to agent-1 (and agent-2), created at T0; returns its id."""
    register(registry, "agent-1", "agent-2")
    return commands.send(group("group-a"), CommandType.DEEP_TRACE, {}).command.id


def test_mark_delivered_moves_pending_to_delivered_at_now(commands, clock, one):
    clock.advance(0.25)

    commands.mark_delivered("agent-1", [one])

    assert delivery_of(commands, one, "agent-1") == Delivery(
        "agent-1", DELIVERED, delivered_at=T0 + 0.25
    )
    assert delivery_of(commands, one, "agent-2") == Delivery("agent-2")


def test_mark_delivered_twice_keeps_the_first_delivery_time(commands, clock, one):
    commands.mark_delivered("agent-1", [one])
    clock.advance(5)
    commands.mark_delivered("agent-1", [one])

    assert delivery_of(commands, one, "agent-1").delivered_at == T0


def test_mark_delivered_of_several_commands_at_once(registry, commands, clock):
    register(registry, "agent-1")
    ids = [commands.send(agent("agent-1"), CommandType.REPLAY, {}).command.id for _ in range(3)]
    clock.advance(1)

    commands.mark_delivered("agent-1", ids[:2])

    assert [delivery_of(commands, cid, "agent-1").status for cid in ids] == [
        DELIVERED,
        DELIVERED,
        PENDING,
    ]


def test_mark_delivered_of_an_unknown_command_is_ignored(commands, one):
    commands.mark_delivered("agent-1", ["no-such-command"])

    assert statuses(commands.get(one)) == {"agent-1": PENDING, "agent-2": PENDING}


def test_ack_success_moves_delivered_to_acknowledged(commands, clock, one):
    commands.mark_delivered("agent-1", [one])
    clock.advance(2)
    result = AckResult(AckStatus.SUCCESS, "done", {"spans": 12})

    acked = commands.acknowledge("agent-1", one, result)

    expected = Delivery(
        "agent-1", ACKNOWLEDGED, delivered_at=T0, acknowledged_at=T0 + 2, result=result
    )
    assert acked == expected
    assert delivery_of(commands, one, "agent-1") == expected


def test_ack_failure_moves_delivered_to_failed(commands, clock, one):
    commands.mark_delivered("agent-1", [one])
    clock.advance(3)
    result = AckResult(AckStatus.FAILURE, "route not found")

    acked = commands.acknowledge("agent-1", one, result)

    assert acked == Delivery(
        "agent-1", FAILED, delivered_at=T0, acknowledged_at=T0 + 3, result=result
    )
    assert acked.result is not None
    assert acked.result.details == {}
    assert delivery_of(commands, one, "agent-1") == acked


def test_ack_of_a_pending_delivery_is_accepted(commands, clock, one):
    clock.advance(4)

    acked = commands.acknowledge("agent-1", one, SUCCESS)

    assert acked == Delivery(
        "agent-1", ACKNOWLEDGED, delivered_at=None, acknowledged_at=T0 + 4, result=SUCCESS
    )
    assert acked.result is not None
    assert acked.result.message is None
    assert acked.result.details == {}
    assert delivery_of(commands, one, "agent-1") == acked


@pytest.mark.parametrize("ack", [SUCCESS, FAILURE], ids=["acknowledged", "failed"])
def test_mark_delivered_never_downgrades_an_acknowledged_delivery(commands, clock, one, ack):
    final = commands.acknowledge("agent-1", one, ack)
    clock.advance(1)

    commands.mark_delivered("agent-1", [one])

    assert delivery_of(commands, one, "agent-1") == final


def test_mark_delivered_never_downgrades_an_expired_delivery(commands, one):
    commands.expire(now=T0 + EXPIRY)

    commands.mark_delivered("agent-1", [one])

    assert delivery_of(commands, one, "agent-1") == Delivery("agent-1", EXPIRED)


# --- acknowledge: repeats, conflicts, expiry, not found ---------------------------------------


def test_repeated_ack_with_the_same_status_returns_the_first_unchanged(commands, clock, one):
    first_result = AckResult(AckStatus.SUCCESS, "first", {"n": 1})
    first = commands.acknowledge("agent-1", one, first_result)
    clock.advance(10)

    repeat = commands.acknowledge("agent-1", one, AckResult(AckStatus.SUCCESS, "second", {"n": 2}))

    assert repeat == first
    assert repeat.acknowledged_at == T0
    assert repeat.result == first_result
    assert delivery_of(commands, one, "agent-1") == first


def test_repeated_failure_ack_returns_the_first_unchanged(commands, clock, one):
    first = commands.acknowledge("agent-1", one, AckResult(AckStatus.FAILURE, "boom"))
    clock.advance(1)

    assert commands.acknowledge("agent-1", one, AckResult(AckStatus.FAILURE, "again")) == first


@pytest.mark.parametrize(
    ("first", "second"),
    [(SUCCESS, FAILURE), (FAILURE, SUCCESS)],
    ids=["ok-then-fail", "fail-then-ok"],
)
def test_a_different_status_after_a_final_ack_is_already_acknowledged(
    commands, clock, one, first, second
):
    done = commands.acknowledge("agent-1", one, first)
    clock.advance(1)

    with pytest.raises(AlreadyAcknowledged):
        commands.acknowledge("agent-1", one, second)

    assert delivery_of(commands, one, "agent-1") == done


def test_ack_just_before_expires_at_is_accepted(commands, clock, one):
    clock.advance(EXPIRY - TINY)

    acked = commands.acknowledge("agent-1", one, SUCCESS)

    assert acked.status is ACKNOWLEDGED


@pytest.mark.parametrize("late", [0.0, 0.5, 1000.0])
@pytest.mark.parametrize("delivered", [False, True], ids=["pending", "delivered"])
def test_ack_at_or_after_expires_at_is_command_expired_before_any_sweep(
    commands, clock, one, late, delivered
):
    if delivered:
        commands.mark_delivered("agent-1", [one])
    before = delivery_of(commands, one, "agent-1")
    clock.advance(EXPIRY + late)

    with pytest.raises(CommandExpired):
        commands.acknowledge("agent-1", one, SUCCESS)

    assert delivery_of(commands, one, "agent-1") == before


@pytest.mark.parametrize("ack", [SUCCESS, FAILURE], ids=["success", "failure"])
def test_ack_of_an_expired_delivery_is_command_expired(commands, clock, one, ack):
    clock.advance(EXPIRY)
    commands.expire()

    with pytest.raises(CommandExpired):
        commands.acknowledge("agent-1", one, ack)

    assert delivery_of(commands, one, "agent-1") == Delivery("agent-1", EXPIRED)


def test_repeat_of_the_same_status_after_expiry_time_still_succeeds(commands, clock, one):
    first = commands.acknowledge("agent-1", one, SUCCESS)
    clock.advance(EXPIRY + 30)
    commands.expire()

    assert commands.acknowledge("agent-1", one, AckResult(AckStatus.SUCCESS, "late")) == first
    with pytest.raises(AlreadyAcknowledged):
        commands.acknowledge("agent-1", one, FAILURE)


def test_ack_of_an_unknown_command_is_command_not_found(commands, one):
    with pytest.raises(CommandNotFound):
        commands.acknowledge("agent-1", "no-such-command", SUCCESS)


def test_ack_of_a_command_not_addressed_to_the_agent_is_command_not_found(registry, commands, one):
    register(registry, "outsider", group_name="group-z")
    only_agent_1 = commands.send(agent("agent-1"), CommandType.REPLAY, {}).command.id

    with pytest.raises(CommandNotFound):
        commands.acknowledge("outsider", one, SUCCESS)
    with pytest.raises(CommandNotFound):
        commands.acknowledge("agent-2", only_agent_1, SUCCESS)

    assert delivery_of(commands, only_agent_1, "agent-1").status is PENDING


def test_ack_from_an_unknown_agent_is_agent_not_found(commands, one):
    with pytest.raises(AgentNotFound):
        commands.acknowledge("ghost", one, SUCCESS)

    with pytest.raises(AgentNotFound):
        commands.acknowledge("ghost", "no-such-command", SUCCESS)


# --- expiry --------------------------------------------------------------------------------


def test_expire_just_before_expires_at_does_nothing(commands, one):
    commands.mark_delivered("agent-1", [one])

    assert commands.expire(now=T0 + EXPIRY - TINY) == 0

    assert statuses(commands.get(one)) == {"agent-1": DELIVERED, "agent-2": PENDING}


def test_expire_at_expires_at_expires_every_open_delivery(commands, clock, one):
    commands.mark_delivered("agent-1", [one])

    assert commands.expire(now=T0 + EXPIRY) == 2

    snapshot = commands.get(one)
    assert snapshot.deliveries == [
        Delivery("agent-1", EXPIRED, delivered_at=T0),  # delivered, never acknowledged
        Delivery("agent-2", EXPIRED, delivered_at=None),  # never delivered
    ]
    assert snapshot.summary()["expired"] == 2
    assert commands.expire(now=T0 + EXPIRY + 100) == 0


def test_expire_uses_the_clock_when_no_time_is_given(commands, clock, one):
    clock.advance(EXPIRY - TINY)
    assert commands.expire() == 0
    clock.advance(TINY)
    assert commands.expire() == 2


def test_expire_leaves_final_deliveries_alone(registry, commands, clock):
    register(registry, "a1", "a2", "a3")
    command_id = commands.send(group("group-a"), CommandType.DEEP_TRACE, {}).command.id
    clock.advance(5)
    acked = commands.acknowledge("a1", command_id, SUCCESS)
    failed = commands.acknowledge("a2", command_id, FAILURE)

    assert commands.expire(now=T0 + EXPIRY) == 1

    assert commands.get(command_id).deliveries == [acked, failed, Delivery("a3", EXPIRED)]


def test_expire_only_touches_commands_that_are_due(registry, commands, clock):
    register(registry, "agent-1")
    early = commands.send(agent("agent-1"), CommandType.REPLAY, {}).command.id
    clock.advance(30)
    late = commands.send(agent("agent-1"), CommandType.REPLAY, {}).command.id

    assert commands.expire(now=T0 + EXPIRY) == 1

    assert delivery_of(commands, early, "agent-1").status is EXPIRED
    assert delivery_of(commands, late, "agent-1").status is PENDING
    assert commands.expire(now=T0 + 30 + EXPIRY) == 1
    assert delivery_of(commands, late, "agent-1").status is EXPIRED


def test_expire_handles_more_due_commands_than_one_batch(registry, commands):
    register(registry, "agent-1")
    ids = [commands.send(agent("agent-1"), CommandType.REPLAY, {}).command.id for _ in range(5)]

    assert commands.expire(now=T0 + EXPIRY, batch=2) == 5

    assert {delivery_of(commands, cid, "agent-1").status for cid in ids} == {EXPIRED}


# --- retention -----------------------------------------------------------------------------


def test_a_command_acked_by_all_is_kept_for_retention_after_the_last_ack(commands, clock, one):
    clock.advance(5)
    commands.acknowledge("agent-1", one, SUCCESS)
    clock.advance(5)
    commands.acknowledge("agent-2", one, FAILURE)  # last final at T0 + 10
    last_final = T0 + 10

    assert commands.purge(now=last_final + RETENTION - TINY) == 0
    assert commands.get(one).command.id == one
    assert [c.id for c, _ in commands.for_agent("agent-1")] == [one]

    assert commands.purge(now=last_final + RETENTION) == 1

    with pytest.raises(CommandNotFound):
        commands.get(one)
    assert commands.for_agent("agent-1") == []
    assert commands.for_agent("agent-2") == []
    with pytest.raises(CommandNotFound):
        commands.acknowledge("agent-1", one, SUCCESS)
    assert commands.purge(now=last_final + 10 * RETENTION) == 0


def test_an_expired_command_is_kept_for_retention_after_expires_at(commands, clock, one):
    commands.acknowledge("agent-1", one, SUCCESS)
    # the sweep runs late; retention still counts from expires_at
    assert commands.expire(now=T0 + EXPIRY + 0.9) == 1

    assert commands.purge(now=T0 + EXPIRY + RETENTION - TINY) == 0
    assert statuses(commands.get(one)) == {"agent-1": ACKNOWLEDGED, "agent-2": EXPIRED}

    assert commands.purge(now=T0 + EXPIRY + RETENTION) == 1
    with pytest.raises(CommandNotFound):
        commands.get(one)
    assert commands.for_agent("agent-2") == []


def test_a_command_with_an_open_delivery_is_not_purged(commands, clock, one):
    commands.acknowledge("agent-1", one, SUCCESS)
    commands.mark_delivered("agent-2", [one])

    assert commands.purge(now=T0 + EXPIRY - TINY + RETENTION) == 0
    assert statuses(commands.get(one)) == {"agent-1": ACKNOWLEDGED, "agent-2": DELIVERED}


def test_purge_drops_only_the_command_whose_retention_ran_out(registry, commands, clock):
    register(registry, "agent-1")
    old = commands.send(agent("agent-1"), CommandType.REPLAY, {}).command.id
    commands.acknowledge("agent-1", old, SUCCESS)
    clock.advance(100)
    new = commands.send(agent("agent-1"), CommandType.REPLAY, {}).command.id
    commands.acknowledge("agent-1", new, SUCCESS)

    assert commands.purge(now=T0 + RETENTION) == 1

    assert [c.id for c, _ in commands.for_agent("agent-1")] == [new]
    assert commands.get(new).command.id == new


# --- reads ---------------------------------------------------------------------------------


def test_get_of_an_unknown_command_is_command_not_found(commands):
    with pytest.raises(CommandNotFound):
        commands.get("no-such-command")


def test_for_agent_lists_newest_first_with_that_agents_delivery(registry, commands, clock):
    register(registry, "agent-1", "agent-2")
    first = commands.send(agent("agent-1"), CommandType.REPLAY, {"n": 1})
    clock.advance(1)
    second = commands.send(group("group-a"), CommandType.DEEP_TRACE, {"n": 2})
    clock.advance(1)
    third = commands.send(agent("agent-2"), CommandType.CONFIG_UPDATE, {"n": 3})
    clock.advance(1)
    fourth = commands.send(ALL, CommandType.REPLAY, {"n": 4})
    commands.mark_delivered("agent-1", [second.command.id])

    listed = commands.for_agent("agent-1")

    assert listed == [
        (fourth.command, Delivery("agent-1")),
        (second.command, Delivery("agent-1", DELIVERED, delivered_at=T0 + 3)),
        (first.command, Delivery("agent-1")),
    ]
    assert [c.id for c, _ in commands.for_agent("agent-2")] == [
        fourth.command.id,
        third.command.id,
        second.command.id,
    ]


def test_for_agent_filters_by_delivery_status(registry, commands, clock):
    register(registry, "agent-1")
    ids = []
    for _ in range(4):
        ids.append(commands.send(agent("agent-1"), CommandType.REPLAY, {}).command.id)
        clock.advance(1)
    commands.mark_delivered("agent-1", [ids[0], ids[1]])
    commands.acknowledge("agent-1", ids[1], SUCCESS)
    commands.acknowledge("agent-1", ids[2], FAILURE)

    def listed(*wanted: DeliveryStatus) -> list[str]:
        return [c.id for c, _ in commands.for_agent("agent-1", set(wanted))]

    assert listed(PENDING) == [ids[3]]
    assert listed(DELIVERED) == [ids[0]]
    assert listed(ACKNOWLEDGED) == [ids[1]]
    assert listed(FAILED) == [ids[2]]
    assert listed(EXPIRED) == []
    assert listed(ACKNOWLEDGED, FAILED) == [ids[2], ids[1]]
    assert listed(PENDING, DELIVERED) == [ids[3], ids[0]]
    assert [c.id for c, _ in commands.for_agent("agent-1", None)] == list(reversed(ids))


def test_for_agent_of_an_agent_without_commands_is_empty(registry, commands):
    register(registry, "agent-1")

    assert commands.for_agent("agent-1") == []


def test_for_agent_of_an_unknown_agent_is_agent_not_found(commands):
    with pytest.raises(AgentNotFound):
        commands.for_agent("ghost")


# --- delivery on connect ---------------------------------------------------------------------


def owed(commands: Commands, agent_id: str) -> list[str]:
    return [command.id for command in commands.pending_on_connect(agent_id)]


def test_only_commands_sent_with_deliver_on_connect_are_owed_on_connect(registry, commands):
    register(registry, "a1")
    plain = commands.send(agent("a1"), CommandType.REPLAY, {})
    first = commands.send(agent("a1"), CommandType.REPLAY, {}, deliver_on_connect=True)
    second = commands.send(group("group-a"), CommandType.DEEP_TRACE, {}, deliver_on_connect=True)
    assert plain.command.deliver_on_connect is False
    assert owed(commands, "a1") == [first.command.id, second.command.id]  # oldest first


def test_a_delivery_written_or_final_is_not_owed_again(registry, commands):
    register(registry, "a1", "a2")
    sent = commands.send(group("group-a"), CommandType.REPLAY, {}, deliver_on_connect=True)
    command_id = sent.command.id
    commands.mark_delivered_to(command_id, ["a1"])
    commands.acknowledge("a2", command_id, FAILURE)  # an ack of a PENDING delivery
    assert owed(commands, "a1") == []
    assert owed(commands, "a2") == []


def test_an_expired_delivery_is_not_owed_even_before_the_sweep(registry, commands, clock):
    register(registry, "a1")
    commands.send(agent("a1"), CommandType.REPLAY, {}, deliver_on_connect=True)
    clock.advance(EXPIRY - TINY)
    assert len(owed(commands, "a1")) == 1
    clock.advance(TINY)
    assert owed(commands, "a1") == []

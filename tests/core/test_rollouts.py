"""Rollouts in the core, on a fake clock: the window, its sliding, the batch interval, the
failure limit, percentages, per-delivery expiry, the command's state, cancel and delete."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import pytest

from agent_registry.core.models import (
    AgentState,
    CommandState,
    CommandType,
    DeliveryStatus,
    Target,
    TargetKind,
)
from agent_registry.core.rollout import Percent, RolloutRequest
from agent_registry.errors import CommandExpired, ValidationFailed
from harness.clock import T0
from tests.core.test_fleet_ops import EXPIRY, FAILURE, SUCCESS, World

PENDING, DELIVERED = DeliveryStatus.PENDING, DeliveryStatus.DELIVERED
ACKNOWLEDGED, FAILED = DeliveryStatus.ACKNOWLEDGED, DeliveryStatus.FAILED
EXPIRED, CANCELLED = DeliveryStatus.EXPIRED, DeliveryStatus.CANCELLED
RUNNING, COMPLETED = CommandState.RUNNING, CommandState.COMPLETED
STOPPED, HALTED = CommandState.STOPPED, CommandState.CANCELLED

GROUP = Target(TargetKind.GROUP, "group-a")
IDS = [f"a{n:02d}" for n in range(10)]


def percent(text: str) -> Percent:
    return Percent(Fraction(text))


class Rollout:
    """One rollout in a World: what was sent, and what its targets do."""

    def __init__(self, world: World, request: RolloutRequest, ids: list[str] = IDS) -> None:
        self.world = world
        world.register(*ids)
        snapshot = world.commands.send(GROUP, CommandType.DEEP_TRACE, {}, rollout=request)
        self.id = snapshot.command.id
        self.first = snapshot

    @property
    def snapshot(self):
        return self.world.commands.get(self.id)

    def sent(self) -> list[str]:
        """Every target sent so far, in the order the bus was asked to send them."""
        return [agent_id for _, batch, _ in self.world.bus.batches for agent_id in batch]

    def in_flight(self) -> list[str]:
        command = self.snapshot.command
        return [
            d.agent_id
            for d in self.snapshot.deliveries
            if command.sent_at(d) is not None and not d.status.is_final
        ]

    def ack(self, agent_id: str, result=SUCCESS) -> None:
        self.world.commands.acknowledge(agent_id, self.id, result)

    def status(self, agent_id: str) -> DeliveryStatus:
        return self.world.statuses(self.id)[agent_id]


@pytest.fixture
def world(clock) -> World:
    return World(clock)


# --- the window ---------------------------------------------------------------------------


def test_the_first_batch_is_sent_at_once_in_id_order_and_the_rest_wait_unsent(world):
    rollout = Rollout(world, RolloutRequest(batch_size=3))

    assert rollout.sent() == ["a00", "a01", "a02"]
    deliveries = {d.agent_id: d for d in rollout.first.deliveries}
    assert [deliveries[a].sent_at for a in IDS[:3]] == [T0] * 3
    assert all(deliveries[a].sent_at is None and deliveries[a].status is PENDING for a in IDS[3:])
    assert rollout.first.state() is RUNNING
    assert rollout.first.command.expires_at is None  # targets are still unsent


def test_each_final_delivery_frees_one_slot_and_the_next_target_is_sent_at_once(world, clock):
    rollout = Rollout(world, RolloutRequest(batch_size=3))
    clock.advance(5)
    rollout.ack("a01")

    assert rollout.sent() == ["a00", "a01", "a02", "a03"]
    assert rollout.in_flight() == ["a00", "a02", "a03"]
    world.commands.mark_delivered("a03", [rollout.id])  # DELIVERED is not final: no slot
    assert rollout.sent() == ["a00", "a01", "a02", "a03"]
    rollout.ack("a00", FAILURE)  # a failure frees its slot too
    rollout.ack("a02")

    assert rollout.sent() == IDS[:6]
    sent_at = {d.agent_id: d.sent_at for d in rollout.snapshot.deliveries}
    assert (sent_at["a02"], sent_at["a03"], sent_at["a05"]) == (T0, T0 + 5, T0 + 5)


def test_never_more_than_the_window_in_flight_through_the_whole_rollout(world, clock):
    rollout = Rollout(world, RolloutRequest(batch_size=4))
    while rollout.in_flight():
        assert len(rollout.in_flight()) <= 4
        clock.advance(1)
        rollout.ack(rollout.in_flight()[-1])

    assert sorted(rollout.sent()) == IDS and len(rollout.sent()) == len(IDS)  # each once
    assert rollout.snapshot.state() is COMPLETED


def test_the_batch_interval_delays_each_freed_slot_from_when_it_was_freed(world, clock):
    rollout = Rollout(world, RolloutRequest(batch_size=2, batch_interval=5.0))
    clock.advance(1)
    rollout.ack("a00")  # freed at T0 + 1: usable at T0 + 6
    assert rollout.sent() == ["a00", "a01"]
    clock.advance(2)
    rollout.ack("a01")  # freed at T0 + 3: usable at T0 + 8

    clock.now = T0 + 5.999
    world.commands.rollouts.sweep()
    assert rollout.sent() == ["a00", "a01"]
    clock.now = T0 + 6
    assert world.commands.rollouts.sweep() == 1
    assert rollout.sent() == ["a00", "a01", "a02"]
    clock.now = T0 + 8
    world.commands.rollouts.sweep()
    assert rollout.sent() == IDS[:4]
    assert world.commands.rollouts.sweep() == 0  # nothing freed since: nothing due


def test_a_rollout_whose_process_died_before_advancing_is_advanced_by_the_sweep(world, clock):
    """The ack was recorded, but the process that recorded it never claimed the next step
    (it was killed): any process's next sweep does."""
    rollout = Rollout(world, RolloutRequest(batch_size=2))
    store = world.command_store
    [(_, delivery)] = store.for_agent("a00")
    acked = replace(delivery, status=ACKNOWLEDGED, acknowledged_at=clock())
    assert store.replace_delivery(rollout.id, PENDING, acked, clock() + 3600)
    assert rollout.sent() == ["a00", "a01"]

    other = World(clock, world.agent_store, store)  # another process on the same store
    assert other.commands.rollouts.sweep() == 1
    assert [a for _, batch, _ in other.bus.batches for a in batch] == ["a02"]


# --- the failure limit --------------------------------------------------------------------


def test_more_failures_than_the_limit_stops_the_rollout_and_cancels_the_unsent(world, clock):
    rollout = Rollout(world, RolloutRequest(batch_size=3, max_failures=1))
    rollout.ack("a00", FAILURE)  # one failure is within the limit: a03 is sent
    assert rollout.sent() == IDS[:4]
    rollout.ack("a01", FAILURE)  # two is more than one: stop

    snapshot = rollout.snapshot
    assert snapshot.state() is STOPPED
    assert rollout.sent() == IDS[:4]
    assert [rollout.status(a) for a in IDS[4:]] == [CANCELLED] * 6
    assert rollout.in_flight() == ["a02", "a03"]  # those sent go on to their final status
    assert snapshot.command.expires_at == T0 + EXPIRY  # nothing more will be sent
    cancelled = [d.agent_id for _, d in world.observer.finished_deliveries if d.status is CANCELLED]
    assert cancelled == IDS[4:]
    rollout.ack("a02")
    rollout.ack("a03")
    assert rollout.sent() == IDS[:4]
    assert rollout.snapshot.state() is STOPPED  # and stays so once every delivery is final


def test_expired_deliveries_count_as_failures(world, clock):
    rollout = Rollout(world, RolloutRequest(batch_size=2, max_failures=1))
    clock.advance(EXPIRY)
    world.commands.expire()  # a00 and a01 expire: two failures, the limit is one

    assert rollout.status("a00") is EXPIRED and rollout.status("a01") is EXPIRED
    assert rollout.snapshot.state() is STOPPED
    assert rollout.sent() == ["a00", "a01"]
    assert {rollout.status(a) for a in IDS[2:]} == {CANCELLED}


def test_a_zero_failure_limit_stops_at_the_first_failure(world):
    rollout = Rollout(world, RolloutRequest(batch_size=1, max_failures=0))
    rollout.ack("a00")
    rollout.ack("a01", FAILURE)

    assert rollout.sent() == ["a00", "a01"]
    assert rollout.snapshot.state() is STOPPED


def test_failures_past_the_limit_after_the_last_target_was_sent_stop_nothing(world):
    """Nothing was left to stop: the rollout COMPLETES, its failures in its summary."""
    rollout = Rollout(world, RolloutRequest(batch_size=10, max_failures=0), IDS[:2])
    rollout.ack("a00", FAILURE)
    rollout.ack("a01", FAILURE)

    assert rollout.snapshot.state() is COMPLETED
    assert rollout.snapshot.summary()["failed"] == 2


# --- percentages --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("batch", "targets", "window"),
    [("10", 25, 3), ("10", 30, 3), ("12.5", 8, 1), ("1", 5, 1), ("100", 7, 7), ("50", 3, 2)],
)
def test_a_batch_size_percentage_rounds_up_and_is_at_least_one(batch, targets, window):
    assert RolloutRequest(percent(batch)).plan(targets, EXPIRY).window == window


@pytest.mark.parametrize(
    ("limit", "targets", "failures"),
    [("5", 10, 0), ("5", 20, 1), ("0", 50, 0), ("100", 4, 4), ("33.4", 3, 1), ("10", 30, 3)],
)
def test_a_failure_limit_percentage_rounds_down(limit, targets, failures):
    plan = RolloutRequest(1, percent(limit)).plan(targets, EXPIRY)
    assert plan.max_failures == failures


def test_percentages_are_resolved_against_the_targets_chosen_at_creation(world):
    rollout = Rollout(world, RolloutRequest(percent("20"), percent("10")))
    plan = rollout.first.command.rollout
    assert (plan.window, plan.max_failures, plan.interval) == (2, 1, 0.0)
    assert rollout.sent() == ["a00", "a01"]


def test_no_failure_limit_by_default(world):
    rollout = Rollout(world, RolloutRequest(batch_size=5))
    for agent_id in IDS:
        rollout.ack(agent_id, FAILURE)
    assert rollout.snapshot.state() is COMPLETED
    assert sorted(rollout.sent()) == IDS


# --- expiry from each delivery's own sentAt -----------------------------------------------


def test_each_delivery_expires_after_its_own_sent_at_and_so_does_its_event(world, clock):
    rollout = Rollout(world, RolloutRequest(batch_size=1))
    clock.advance(30)
    rollout.ack("a00")  # a01 sent at T0 + 30

    [first, second] = world.bus.batches
    assert first[0].expires_at == T0 + EXPIRY and first[2] == T0
    assert second[0].expires_at == T0 + 30 + EXPIRY and second[2] == T0 + 30
    clock.now = T0 + EXPIRY + 1  # past the command's creation + expiry
    world.commands.expire()
    assert rollout.status("a01") is PENDING
    rollout.ack("a01")  # accepted: its own deadline is T0 + 90
    assert rollout.status("a01") is ACKNOWLEDGED
    clock.now = T0 + 61 + EXPIRY  # a02 was sent at T0 + 61
    with pytest.raises(CommandExpired):
        rollout.ack("a02")
    world.commands.expire()
    assert rollout.status("a02") is EXPIRED


def test_the_command_expires_at_is_null_until_the_last_target_is_sent(world, clock):
    rollout = Rollout(world, RolloutRequest(batch_size=2), IDS[:3])
    assert rollout.snapshot.command.expires_at is None
    clock.advance(7)
    rollout.ack("a00")  # a02, the last one, is sent at T0 + 7

    assert rollout.snapshot.command.expires_at == T0 + 7 + EXPIRY


def test_a_rollout_whose_first_batch_covers_every_target_expires_like_any_command(world):
    rollout = Rollout(world, RolloutRequest(batch_size=5), IDS[:3])
    assert rollout.first.command.expires_at == T0 + EXPIRY
    assert rollout.sent() == IDS[:3]


def test_unsent_deliveries_never_expire_while_they_wait(world, clock):
    rollout = Rollout(world, RolloutRequest(batch_size=1), IDS[:3])
    clock.advance(EXPIRY - 1)
    rollout.ack("a00")  # a01 sent at T0 + 59
    clock.advance(EXPIRY)  # T0 + 119: a01 is due, a02 was never sent
    world.commands.expire()

    assert rollout.status("a01") is EXPIRED
    assert rollout.sent() == IDS[:3]  # a01's expiry freed its slot: a02 sent now
    assert rollout.snapshot.deliveries[2].sent_at == T0 + 119


# --- the command's state ------------------------------------------------------------------


def test_a_command_without_a_rollout_is_running_then_completed(world):
    world.register("b1", "b2")
    command_id = world.send(GROUP)
    assert world.commands.get(command_id).state() is RUNNING
    world.commands.acknowledge("b1", command_id, SUCCESS)
    world.commands.acknowledge("b2", command_id, FAILURE)
    assert world.commands.get(command_id).state() is COMPLETED
    delivery = world.commands.get(command_id).deliveries[0]
    assert world.commands.get(command_id).command.sent_at(delivery) == T0


def test_a_cancelled_command_without_a_rollout_reads_cancelled(world):
    world.register("b1", "b2")
    command_id = world.send(GROUP)
    world.commands.acknowledge("b1", command_id, SUCCESS)
    assert world.commands.cancel(command_id).state() is HALTED
    finished = world.send(GROUP)
    for agent_id in ("b1", "b2"):
        world.commands.acknowledge(agent_id, finished, SUCCESS)
    assert world.commands.cancel(finished).state() is COMPLETED  # nothing to cancel


# --- cancel and delete --------------------------------------------------------------------


def test_cancelling_a_rollout_cancels_its_unsent_targets_and_sends_nothing_more(world, clock):
    rollout = Rollout(world, RolloutRequest(batch_size=2, batch_interval=1.0))
    rollout.ack("a00")

    snapshot = world.commands.cancel(rollout.id)

    assert snapshot.state() is HALTED
    assert {d.status for d in snapshot.deliveries} == {ACKNOWLEDGED, CANCELLED}
    assert world.bus.cancelled == [(rollout.id, ["a01"])]  # the unsent never saw it
    clock.advance(10)
    assert world.commands.rollouts.sweep() == 0
    assert rollout.sent() == ["a00", "a01"]


def test_deleting_an_agent_in_flight_frees_its_slot(world):
    rollout = Rollout(world, RolloutRequest(batch_size=2))
    world.fleet.delete("a01")

    assert rollout.status("a01") is CANCELLED
    assert rollout.sent() == ["a00", "a01", "a02"]


def test_an_agent_deleted_before_its_turn_is_skipped(world):
    rollout = Rollout(world, RolloutRequest(batch_size=2))
    world.fleet.delete("a02")
    rollout.ack("a00")

    assert rollout.status("a02") is CANCELLED
    assert rollout.sent() == ["a00", "a01", "a03"]
    assert rollout.snapshot.summary()["cancelled"] == 1


def test_an_agent_that_left_live_before_its_turn_is_sent_anyway(world):
    rollout = Rollout(world, RolloutRequest(batch_size=1), IDS[:2])
    assert world.agent_store.transition("a01", T0 + 90, AgentState.STALE, T0 + 1, T0 + 400)
    rollout.ack("a00")

    assert rollout.sent() == ["a00", "a01"]


# --- validation -------------------------------------------------------------------------


def test_a_rollout_on_a_single_agent_command_is_refused(world):
    world.register("b1")
    with pytest.raises(ValidationFailed) as refused:
        world.commands.send(
            Target(TargetKind.AGENT, "b1"), CommandType.REPLAY, {}, rollout=RolloutRequest(1)
        )
    assert "rollout" in (refused.value.errors or {})
    assert world.bus.batches == []


def test_a_rollout_on_an_unknown_single_agent_is_refused_before_the_404(world):
    with pytest.raises(ValidationFailed):
        world.commands.send(
            Target(TargetKind.AGENT, "nobody"), CommandType.REPLAY, {}, rollout=RolloutRequest(1)
        )

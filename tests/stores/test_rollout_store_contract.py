"""The rollout operations of the CommandStore port, on the memory store and on Redis: the
claim (window, interval, failure limit, skipping targets final before their turn), the
rollouts due, the expiry index of deliveries in flight, and claims racing each other."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import gevent
import pytest

from agent_registry.core.acknowledgement import AckVerdict
from agent_registry.core.models import (
    AckResult,
    AckStatus,
    Command,
    CommandState,
    CommandType,
    Delivery,
    DeliveryStatus,
    Target,
    TargetKind,
)
from agent_registry.core.rollout import RolloutPlan
from agent_registry.redis.client import connect
from agent_registry.redis.commands import RedisCommandStore
from harness.clock import T0

PENDING, CANCELLED = DeliveryStatus.PENDING, DeliveryStatus.CANCELLED
ACKNOWLEDGED, FAILED = DeliveryStatus.ACKNOWLEDGED, DeliveryStatus.FAILED
EXPIRED = DeliveryStatus.EXPIRED
EXPIRY, RETAIN = 60.0, T0 + 3600
IDS = [f"t{n:02d}" for n in range(8)]


def rollout(
    command_id: str = "r1",
    window: int = 3,
    max_failures: int | None = None,
    interval: float = 0.0,
) -> Command:
    return Command(
        command_id,
        CommandType.DEEP_TRACE,
        {},
        Target(TargetKind.GROUP, "g"),
        T0,
        None,
        rollout=RolloutPlan(window, max_failures, interval, EXPIRY),
    )


def add(commands, command: Command, ids: list[str] = IDS) -> None:
    commands.add(command, [Delivery(agent_id) for agent_id in ids])


def final(commands, agent_id: str, status: DeliveryStatus, command_id: str = "r1") -> None:
    if status in (ACKNOWLEDGED, FAILED):  # as an agent's ack makes it final
        result = AckResult(AckStatus.SUCCESS if status is ACKNOWLEDGED else AckStatus.FAILURE)
        outcome = commands.acknowledge(command_id, agent_id, result, T0, RETAIN)
        assert outcome.verdict is AckVerdict.RECORDED
        return
    _, current = commands.get_delivery(command_id, agent_id)
    assert commands.replace_delivery(
        command_id, current.status, replace(current, status=status), RETAIN
    )


def sent_at(commands, command_id: str = "r1") -> dict[str, float | None]:
    return {d.agent_id: d.sent_at for d in commands.get(command_id).deliveries}


def test_a_new_rollout_is_due_and_its_first_claim_sends_the_window_in_id_order(commands):
    add(commands, rollout(window=3))
    assert commands.due_rollouts(T0, 10) == ["r1"]

    step = commands.claim("r1", T0 + 1, RETAIN)

    assert (step.sent, step.sent_at, step.cancelled) == (IDS[:3], T0 + 1, [])
    assert step.command.expires_at is None
    assert sent_at(commands) == {a: (T0 + 1 if a in IDS[:3] else None) for a in IDS}
    assert {d.status for d in commands.get("r1").deliveries} == {PENDING}
    assert commands.due_rollouts(T0 + 100, 10) == []  # the window is full: nothing due
    assert commands.claim("r1", T0 + 2, RETAIN).sent == []


@pytest.mark.parametrize(
    ("late", "verdict"),
    [(EXPIRY - 0.001, AckVerdict.RECORDED), (EXPIRY, AckVerdict.EXPIRED)],
    ids=["before-its-deadline", "at-its-deadline"],
)
def test_a_rollout_ack_is_judged_by_when_its_target_was_sent(commands, late, verdict):
    """A rollout delivery expires EXPIRY after its own ``sentAt`` (the command has no
    ``expiresAt`` while it sends), and an ack keeps that ``sentAt``."""
    add(commands, rollout(window=2))
    sent = T0 + 5.123456789
    assert commands.claim("r1", sent, RETAIN).sent == IDS[:2]

    outcome = commands.acknowledge("r1", "t00", AckResult(AckStatus.SUCCESS), sent + late, RETAIN)

    assert outcome.verdict is verdict
    _, stored = commands.get_delivery("r1", "t00")
    assert stored == outcome.delivery
    assert (stored.status, stored.sent_at) == (
        ACKNOWLEDGED if verdict is AckVerdict.RECORDED else PENDING,
        sent,
    )


def test_a_final_delivery_makes_the_rollout_due_and_frees_its_slot(commands):
    add(commands, rollout(window=2))
    commands.claim("r1", T0, RETAIN)
    final(commands, "t01", ACKNOWLEDGED)

    assert commands.due_rollouts(T0, 10) == ["r1"]
    assert commands.claim("r1", T0 + 5, RETAIN).sent == ["t02"]
    assert sent_at(commands)["t02"] == T0 + 5
    final(commands, "t00", FAILED)
    final(commands, "t02", EXPIRED)
    assert commands.claim("r1", T0 + 6, RETAIN).sent == ["t03", "t04"]


def test_a_freed_slot_waits_out_the_batch_interval(commands):
    add(commands, rollout(window=2, interval=10.0))
    commands.claim("r1", T0, RETAIN)
    final(commands, "t00", ACKNOWLEDGED)

    assert commands.claim("r1", T0 + 1, RETAIN).sent == []  # freed now: usable at T0 + 11
    assert commands.due_rollouts(T0 + 10.9, 10) == []
    assert commands.due_rollouts(T0 + 11, 10) == ["r1"]
    assert commands.claim("r1", T0 + 10.9, RETAIN).sent == []
    assert commands.claim("r1", T0 + 11, RETAIN).sent == ["t02"]


def test_more_failures_than_the_limit_cancel_the_unsent_and_stop_the_command(commands):
    add(commands, rollout(window=2, max_failures=1), IDS[:5])
    commands.claim("r1", T0, RETAIN)
    final(commands, "t00", FAILED)
    assert commands.claim("r1", T0 + 1, RETAIN).sent == ["t02"]
    final(commands, "t01", EXPIRED)

    step = commands.claim("r1", T0 + 2, RETAIN)

    assert step.sent == []
    assert [(d.agent_id, d.status, d.sent_at) for d in step.cancelled] == [
        ("t03", CANCELLED, None),
        ("t04", CANCELLED, None),
    ]
    assert step.command.halted is CommandState.STOPPED
    assert step.command.expires_at == T0 + 1 + EXPIRY  # t02, the last sent
    assert commands.get("r1").command == step.command
    assert commands.due_rollouts(T0 + 100, 10) == []
    assert commands.claim("r1", T0 + 3, RETAIN).cancelled == []  # once
    final(commands, "t02", ACKNOWLEDGED)
    assert commands.due_purges(RETAIN, 10) == ["r1"]


def test_targets_final_before_their_turn_are_skipped(commands):
    add(commands, rollout(window=2), IDS[:5])
    commands.claim("r1", T0, RETAIN)
    assert [d.agent_id for d in commands.cancel_deliveries("r1", ["t02"], RETAIN)] == ["t02"]
    final(commands, "t03", ACKNOWLEDGED)  # an ack before it was sent
    final(commands, "t00", ACKNOWLEDGED)

    assert commands.claim("r1", T0 + 1, RETAIN).sent == ["t04"]
    assert commands.get("r1").command.expires_at == T0 + 1 + EXPIRY  # none left unsent


def test_a_halting_cancel_stops_the_rollout(commands):
    add(commands, rollout(window=2), IDS[:4])
    commands.claim("r1", T0, RETAIN)
    cancelled = commands.cancel_deliveries("r1", IDS[:4], RETAIN, halt=True)

    assert len(cancelled) == 4
    assert [d.sent_at for d in cancelled] == [T0, T0, None, None]
    command = commands.get("r1").command
    assert command.halted is CommandState.CANCELLED
    assert command.expires_at == T0 + EXPIRY
    assert commands.claim("r1", T0 + 1, RETAIN).sent == []
    assert commands.due_rollouts(T0 + 100, 10) == []
    assert commands.due_purges(RETAIN, 10) == ["r1"]


def test_the_first_halt_stays(commands):
    add(commands, rollout(window=1, max_failures=0), IDS[:3])
    commands.claim("r1", T0, RETAIN)
    final(commands, "t00", FAILED)
    commands.claim("r1", T0 + 1, RETAIN)
    assert commands.cancel_deliveries("r1", IDS[:3], RETAIN, halt=True) == []
    assert commands.get("r1").command.halted is CommandState.STOPPED


def test_a_halting_cancel_of_a_command_without_a_rollout_marks_it_cancelled(commands):
    plain = replace(rollout("p1"), rollout=None, expires_at=T0 + EXPIRY)
    add(commands, plain, IDS[:2])
    commands.cancel_deliveries("p1", ["t00"], RETAIN)  # an agent deleted: no halt
    assert commands.get("p1").command.halted is None
    commands.cancel_deliveries("p1", ["t01"], RETAIN, halt=True)
    assert commands.get("p1").command.halted is CommandState.CANCELLED


def test_the_expiry_index_follows_the_earliest_deadline_in_flight(commands):
    add(commands, rollout(window=2), IDS[:3])
    assert commands.due_expiries(T0 + 10_000, 10) == []  # nothing sent yet
    commands.claim("r1", T0, RETAIN)
    final(commands, "t00", ACKNOWLEDGED)
    commands.claim("r1", T0 + 20, RETAIN)  # t02 in flight until T0 + 80

    assert commands.due_expiries(T0 + EXPIRY - 1, 10) == []
    assert [c.id for c in commands.due_expiries(T0 + EXPIRY, 10)] == ["r1"]
    final(commands, "t01", EXPIRED)
    commands.expiry_done("r1")
    assert commands.due_expiries(T0 + 79, 10) == []
    assert [c.id for c in commands.due_expiries(T0 + 80, 10)] == ["r1"]
    final(commands, "t02", EXPIRED)
    commands.expiry_done("r1")
    assert commands.due_expiries(T0 + 10_000, 10) == []


def test_a_rollout_command_reads_back_as_stored(commands):
    command = rollout(window=4, max_failures=2, interval=1.5)
    add(commands, command)
    assert commands.get("r1").command == command
    assert commands.get_command("r1") == command
    no_limit = rollout("r2")
    add(commands, no_limit)
    assert commands.get_command("r2").rollout.max_failures is None


def test_purge_forgets_a_rollout(commands):
    add(commands, rollout(window=1), IDS[:2])
    commands.claim("r1", T0, RETAIN)
    commands.purge("r1")
    assert commands.get("r1") is None
    assert commands.due_rollouts(T0 + 100, 10) == []
    assert commands.claim("r1", T0 + 1, RETAIN).command is None


def test_an_unknown_or_plain_command_claims_nothing(commands):
    assert commands.claim("nope", T0, RETAIN).command is None
    add(commands, replace(rollout("p1"), rollout=None, expires_at=T0 + EXPIRY))
    step = commands.claim("p1", T0, RETAIN)
    assert (step.sent, step.cancelled) == ([], [])


# --- claims racing ------------------------------------------------------------------------

TARGETS = [f"race-{n:03d}" for n in range(40)]
WINDOW = 5


def race(stores: list, claims: int) -> list[str]:
    """``claims`` claims at once, spread over the workers (threads on Redis, each with its
    own connection; greenlets on the memory store, as in one gevent worker)."""

    def claim(number: int) -> list[str]:
        return stores[number % len(stores)].claim("race", T0 + 1, RETAIN).sent

    if isinstance(stores[0], RedisCommandStore):
        with ThreadPoolExecutor(len(stores)) as pool:
            answers = list(pool.map(claim, range(claims)))
    else:
        greenlets = [gevent.spawn(claim, number) for number in range(claims)]
        gevent.joinall(greenlets, raise_error=True)
        answers = [greenlet.value for greenlet in greenlets]
    return [agent_id for answer in answers for agent_id in answer]


@pytest.fixture
def workers(request, commands):
    """Four store instances on one store: one per worker process."""
    if not isinstance(commands, RedisCommandStore):
        yield [commands] * 4
        return
    server = request.getfixturevalue("redis_server")
    clients = [connect(server.url) for _ in range(4)]
    yield [RedisCommandStore(client) for client in clients]
    for client in clients:
        client.connection_pool.disconnect()


def test_racing_claims_never_send_a_target_twice_nor_overfill_the_window(workers):
    store = workers[0]
    add(store, rollout("race", window=WINDOW), TARGETS)
    sent: list[str] = []
    in_flight: list[str] = []
    while len(sent) < len(TARGETS):
        batch = race(workers, claims=16)
        sent += batch
        in_flight += batch
        assert len(in_flight) <= WINDOW, f"{len(in_flight)} in flight"
        assert len(in_flight) == min(WINDOW, len(TARGETS) - len(sent) + len(in_flight))
        for agent_id in in_flight[:3]:  # three become final: three slots free
            final(store, agent_id, ACKNOWLEDGED, "race")
        in_flight = in_flight[3:]

    assert Counter(sent) == Counter(TARGETS)  # each target once
    assert sent == sorted(sent)  # in id order


def test_a_sent_target_marked_delivered_keeps_when_it_was_sent(commands):
    add(commands, rollout(window=2))
    sent = T0 + 5.123456789
    assert commands.claim("r1", sent, RETAIN).sent == IDS[:2]

    assert commands.mark_delivered("r1", IDS[:2], sent + 0.5) == 2

    marked = {d.agent_id: d for d in commands.get("r1").deliveries if d.agent_id in IDS[:2]}
    assert {(d.status, d.delivered_at, d.sent_at) for d in marked.values()} == {
        (DeliveryStatus.DELIVERED, sent + 0.5, sent)
    }

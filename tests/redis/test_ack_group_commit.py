"""Group commit of acks: concurrent greenlets' acks share one call of the ack script (each
command read once in it), each with its own outcome, and two racing acks of one delivery
in one batch still record it once."""

from __future__ import annotations

from dataclasses import replace

import gevent
import pytest
import redis

from agent_registry.core.acknowledgement import AckVerdict
from agent_registry.core.models import (
    AckResult,
    AckStatus,
    Command,
    CommandType,
    Delivery,
    DeliveryStatus,
    Target,
    TargetKind,
)
from agent_registry.core.rollout import RolloutPlan
from agent_registry.redis.commands import RedisCommandStore
from harness.clock import T0
from tests.redis.helpers import command, command_calls

pytestmark = pytest.mark.redis

DELIVERED, ACKNOWLEDGED = DeliveryStatus.DELIVERED, DeliveryStatus.ACKNOWLEDGED
AGENTS = [f"a{index:03}" for index in range(200)]
SUCCESS, FAILURE = AckResult(AckStatus.SUCCESS), AckResult(AckStatus.FAILURE, "no")


@pytest.fixture
def store(redis_client) -> RedisCommandStore:
    store = RedisCommandStore(redis_client, group_commit=True)
    command = Command("c1", CommandType.DEEP_TRACE, {"n": 1}, Target(TargetKind.ALL), T0, T0 + 60)
    store.add(command, [Delivery(agent_id, DELIVERED, delivered_at=T0) for agent_id in AGENTS])
    return store


def ack(store: RedisCommandStore, agent_id: str, command_id: str = "c1", result=SUCCESS):
    """What Commands.acknowledge asks of the store."""
    outcome = store.acknowledge(command_id, agent_id, result, T0 + 1, T0 + 3600)
    return None if outcome is None else outcome.verdict


def test_acks_from_many_greenlets_share_one_script_call(store, redis_client):
    ack(store, AGENTS[0])  # loads the script (a NOSCRIPT retry is a call)
    assert store.ack_batches is not None
    batches = store.ack_batches.batches
    names = ("hgetall", "hmget", "hget", "exec", "evalsha")
    before = {name: command_calls(redis_client, name) for name in names}

    acks = [gevent.spawn(ack, store, agent_id) for agent_id in AGENTS[1:]]
    missing = gevent.spawn(ack, store, "nobody")
    gevent.joinall([*acks, missing], raise_error=True)

    assert [a.value for a in acks] == [AckVerdict.RECORDED] * 199
    assert missing.value is None
    # 200 acks waited for one flusher: one batch, one script call reading the command once
    # (the script's own HGETs, one per ack, are counted by Redis too).
    assert store.ack_batches.batches - batches == 1
    assert {name: command_calls(redis_client, name) - count for name, count in before.items()} == {
        "hgetall": 1,
        "hmget": 0,
        "hget": 200,
        "exec": 0,
        "evalsha": 1,
    }
    snapshot = store.get("c1")
    assert snapshot is not None
    assert {d.status for d in snapshot.deliveries} == {ACKNOWLEDGED}
    assert snapshot.summary()["acknowledged"] == 200


def test_two_racing_acks_of_one_delivery_in_one_batch_record_it_once(store):
    racing = [gevent.spawn(ack, store, "a007", "c1", result) for result in (SUCCESS, FAILURE)]
    gevent.joinall(racing, raise_error=True)

    assert [r.value for r in racing] == [AckVerdict.RECORDED, AckVerdict.ALREADY_FINAL]
    snapshot = store.get("c1")
    assert snapshot is not None
    assert snapshot.summary()["acknowledged"] == 1 and snapshot.summary()["failed"] == 0


def test_one_batch_over_two_commands_answers_each_ack_with_its_own_command(store):
    other = Command("c2", CommandType.REPLAY, {}, Target(TargetKind.ALL), T0, T0 + 60)
    store.add(other, [Delivery("a001", DELIVERED, delivered_at=T0)])
    wanted = [("c1", "a001"), ("c2", "a001"), ("c2", "a002"), ("c1", "a002"), ("c1", "a001")]
    acks = [
        gevent.spawn(store.acknowledge, command_id, agent_id, SUCCESS, T0 + 1, T0 + 3600)
        for command_id, agent_id in wanted
    ]
    gevent.joinall(acks, raise_error=True)

    found = [a.value for a in acks]
    assert [
        None if f is None else (f.command.id, f.delivery.agent_id, f.verdict) for f in found
    ] == [
        ("c1", "a001", AckVerdict.RECORDED),
        ("c2", "a001", AckVerdict.RECORDED),
        None,  # c2 was not sent to a002
        ("c1", "a002", AckVerdict.RECORDED),
        ("c1", "a001", AckVerdict.REPEATED),  # the first of the batch recorded it
    ]
    assert store.get("c2").summary()["acknowledged"] == 1
    assert store.get("c1").summary()["acknowledged"] == 2


def test_a_result_crosses_the_batch_exactly_and_a_missing_command_shifts_nothing(store):
    """The acks travel as one JSON argument: text that needs escaping and times with 17
    significant digits come back as sent; an unknown command's place is skipped, not
    reused."""
    at = T0 + 0.123456789  # 1773224130.1234567: 17 digits, which Lua would round to 14
    tricky = AckResult(
        AckStatus.FAILURE,
        'a "quoted" \\ back\\slash,\nnewline and ünïcödé ✓',
        {"elapsedMs": 0.1 + 0.2, "big": 2**60 + 1, "nested": {"k": ["v", None, True]}},
    )
    acks = [
        gevent.spawn(store.acknowledge, "ghost", "a001", SUCCESS, T0 + 1, T0 + 3600),
        gevent.spawn(store.acknowledge, "c1", "a003", tricky, at, T0 + 3600),
    ]
    gevent.joinall(acks, raise_error=True)

    ghost, recorded = (a.value for a in acks)
    assert ghost is None
    assert recorded is not None and recorded.verdict is AckVerdict.RECORDED
    snapshot = store.get("c1")
    assert snapshot is not None
    stored = next(d for d in snapshot.deliveries if d.agent_id == "a003")
    assert stored == recorded.delivery
    assert stored.result == tricky and stored.acknowledged_at == at


def dump(client: redis.Redis) -> dict[str, object]:
    """Every key's type and content."""
    read = {
        "hash": client.hgetall,
        "zset": lambda key: client.zrange(key, 0, -1, withscores=True),
        "set": client.smembers,
        "list": lambda key: client.lrange(key, 0, -1),
        "string": client.get,
    }
    kinds = {key: client.type(key) for key in client.scan_iter()}
    return {key: (kind, read[kind](key)) for key, kind in kinds.items()}


def test_one_batch_leaves_redis_as_the_same_acks_sent_one_by_one(redis_client):
    """Acks of a batch close their commands once per command (the counts, the purge, a
    rollout's in-flight set and failures): the end state is that of acks sent alone."""
    rollout = Command("r1", CommandType.REPLAY, {}, Target(TargetKind.ALL), T0, None)
    rollout = replace(rollout, rollout=RolloutPlan(4, None, 0.0, 60.0))
    plain = [f"a{index}" for index in range(6)]
    sent = ["r0", "r1", "r2", "r3"]
    acks = [
        *(("c1", agent, SUCCESS) for agent in plain[:4]),
        ("c1", plain[0], SUCCESS),  # a repeat
        *(("c2", agent, FAILURE) for agent in plain[:2]),  # closes c2: its purge is due
        ("r1", sent[0], FAILURE),
        ("r1", sent[1], SUCCESS),
        ("r1", sent[2], FAILURE),
        ("c1", plain[4], FAILURE),
    ]

    def run(batched: bool) -> dict[str, object]:
        redis_client.flushall()
        store = RedisCommandStore(redis_client, group_commit=batched)
        store.add(command("c1"), [Delivery(a, DELIVERED, delivered_at=T0) for a in plain])
        store.add(command("c2"), [Delivery(a, DELIVERED, delivered_at=T0) for a in plain[:2]])
        store.add(rollout, [Delivery(agent) for agent in sent])
        store.claim("r1", T0, T0 + 3600)
        store.mark_delivered("r1", sent, T0 + 0.5)
        # Each ack its own retention's end, as acks a moment apart have: a closed command's
        # purge is scored by the ack that closed it.
        timed = [(*ack, T0 + 3600 + index) for index, ack in enumerate(acks)]
        if not batched:
            for command_id, agent_id, result, retain_until in timed:
                store.acknowledge(command_id, agent_id, result, T0 + 1, retain_until)
            return dump(redis_client)
        assert store.ack_batches is not None
        greenlets = [
            gevent.spawn(store.acknowledge, command_id, agent_id, result, T0 + 1, retain_until)
            for command_id, agent_id, result, retain_until in timed
        ]
        gevent.joinall(greenlets, raise_error=True)
        assert store.ack_batches.batches == 1
        return dump(redis_client)

    one_by_one = run(batched=False)
    assert run(batched=True) == one_by_one
    assert "ar:cmd-purges" in one_by_one  # c2 closed: the batch's purge is checked too

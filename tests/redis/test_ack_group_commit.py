"""Group commit of acks: concurrent greenlets' delivery reads share one transaction (each
command read once, its deliveries in one HMGET) and their replacements one script call,
each with its own answer, and a compare-and-set still lets only one of two racing acks
win."""

from __future__ import annotations

from dataclasses import replace

import gevent
import pytest
import redis

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
from agent_registry.redis.commands import RedisCommandStore
from harness.clock import T0

pytestmark = pytest.mark.redis

DELIVERED, ACKNOWLEDGED = DeliveryStatus.DELIVERED, DeliveryStatus.ACKNOWLEDGED
AGENTS = [f"a{index:03}" for index in range(200)]


def calls(client: redis.Redis, command: str) -> int:
    return int(client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


@pytest.fixture
def store(redis_client) -> RedisCommandStore:
    store = RedisCommandStore(redis_client, group_commit=True)
    command = Command("c1", CommandType.DEEP_TRACE, {"n": 1}, Target(TargetKind.ALL), T0, T0 + 60)
    store.add(command, [Delivery(agent_id, DELIVERED, delivered_at=T0) for agent_id in AGENTS])
    return store


def ack(store: RedisCommandStore, agent_id: str) -> bool:
    """What Commands.acknowledge asks of the store: read the delivery, then replace it."""
    found = store.get_delivery("c1", agent_id)
    assert found is not None
    _, current = found
    done = replace(
        current, status=ACKNOWLEDGED, acknowledged_at=T0 + 1, result=AckResult(AckStatus.SUCCESS)
    )
    return store.replace_delivery("c1", current.status, done, T0 + 3600)


def test_acks_from_many_greenlets_share_one_read_and_one_write_round_trip(store, redis_client):
    ack(store, AGENTS[0])  # loads the script (a NOSCRIPT retry is a call)
    assert store.read_batches is not None and store.replace_batches is not None
    reads, writes = store.read_batches.batches, store.replace_batches.batches
    before = {name: calls(redis_client, name) for name in ("hgetall", "hmget", "exec", "evalsha")}

    acks = [gevent.spawn(ack, store, agent_id) for agent_id in AGENTS[1:]]
    missing = gevent.spawn(store.get_delivery, "c1", "nobody")
    gevent.joinall([*acks, missing], raise_error=True)

    assert [a.value for a in acks] == [True] * 199
    assert missing.value is None
    # 200 reads waited for one flusher: one transaction, the command read once in it.
    assert store.read_batches.batches - reads == 1
    assert store.replace_batches.batches - writes == 1
    # By Redis's own counters: one transaction reading the command once and its deliveries
    # in one HMGET; one script call writing all 199.
    assert {name: calls(redis_client, name) - count for name, count in before.items()} == {
        "hgetall": 1,
        "hmget": 1,
        "exec": 1,
        "evalsha": 1,
    }
    snapshot = store.get("c1")
    assert snapshot is not None
    assert {d.status for d in snapshot.deliveries} == {ACKNOWLEDGED}
    assert snapshot.summary()["acknowledged"] == 200


def test_two_racing_acks_of_one_delivery_in_one_batch_record_it_once(store):
    found = store.get_delivery("c1", "a007")
    assert found is not None
    _, current = found
    acked = replace(current, status=ACKNOWLEDGED, acknowledged_at=T0 + 1)
    failed = replace(current, status=DeliveryStatus.FAILED, acknowledged_at=T0 + 1)
    racing = [
        gevent.spawn(store.replace_delivery, "c1", DELIVERED, final, T0 + 3600)
        for final in (acked, failed)
    ]
    gevent.joinall(racing, raise_error=True)

    assert [r.value for r in racing] == [True, False]
    found = store.get_delivery("c1", "a007")
    assert found is not None and found[1].status is ACKNOWLEDGED
    snapshot = store.get("c1")
    assert snapshot is not None and snapshot.summary()["failed"] == 0


def test_one_batch_over_two_commands_answers_each_delivery_of_each(store, redis_client):
    other = Command("c2", CommandType.REPLAY, {}, Target(TargetKind.ALL), T0, T0 + 60)
    store.add(other, [Delivery("a001", DELIVERED, delivered_at=T0)])
    reads = [
        gevent.spawn(store.get_delivery, command_id, agent_id)
        for command_id, agent_id in (("c1", "a001"), ("c2", "a001"), ("c2", "a002"), ("c1", "a002"))
    ]
    gevent.joinall(reads, raise_error=True)
    found = [r.value for r in reads]
    assert [None if f is None else (f[0].id, f[1].agent_id) for f in found] == [
        ("c1", "a001"),
        ("c2", "a001"),
        None,  # c2 was not sent to a002
        ("c1", "a002"),
    ]

    done = replace(found[1][1], status=ACKNOWLEDGED, acknowledged_at=T0 + 1)
    writes = [
        gevent.spawn(store.replace_delivery, "c2", DELIVERED, done, T0 + 3600),
        gevent.spawn(store.replace_delivery, "c1", ACKNOWLEDGED, done, T0 + 3600),  # not so
    ]
    gevent.joinall(writes, raise_error=True)
    assert [w.value for w in writes] == [True, False]
    assert store.get("c2").summary()["acknowledged"] == 1
    assert store.get("c1").summary()["acknowledged"] == 0


def test_two_reads_of_one_delivery_in_one_batch_each_get_it(store):
    reads = [gevent.spawn(store.get_delivery, "c1", "a001") for _ in range(2)]
    gevent.joinall(reads, raise_error=True)

    assert [(r.value[0].id, r.value[1].agent_id) for r in reads] == [("c1", "a001")] * 2

"""Group commit of acks: concurrent greenlets' delivery reads share one transaction (each
command read once) and their replacements one pipelined round trip, each with its own
answer, and a compare-and-set still lets only one of two racing acks win."""

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
    hgetall_before, exec_before = calls(redis_client, "hgetall"), calls(redis_client, "exec")

    acks = [gevent.spawn(ack, store, agent_id) for agent_id in AGENTS[1:]]
    missing = gevent.spawn(store.get_delivery, "c1", "nobody")
    gevent.joinall([*acks, missing], raise_error=True)

    assert [a.value for a in acks] == [True] * 199
    assert missing.value is None
    # 200 reads waited for one flusher: one transaction, the command read once in it.
    assert store.read_batches.batches - reads == 1
    assert calls(redis_client, "exec") - exec_before == 1
    assert calls(redis_client, "hgetall") - hgetall_before == 1
    assert store.replace_batches.batches - writes == 1
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

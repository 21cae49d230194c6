"""The scripts that mark a delivery and record its ack write its JSON as text, not with cjson:
what they write must be what Python writes (``_encode_delivery``), byte for byte, whether
the delivery was last written by Python or by a script's cjson (a rollout's claim)."""

from __future__ import annotations

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
from agent_registry.core.rollout import RolloutPlan
from agent_registry.redis.commands import RedisCommandStore, _encode_delivery, deliveries_key
from harness.clock import T0

pytestmark = pytest.mark.redis

DELIVERED, ACKNOWLEDGED = DeliveryStatus.DELIVERED, DeliveryStatus.ACKNOWLEDGED
SENT, AT = T0 + 1.123456789, T0 + 2.987654321  # 17 significant digits each
RESULT = AckResult(AckStatus.SUCCESS, 'quotes " and {"status":"PENDING"}', {"sentAt": 1})


def text(client: redis.Redis, command_id: str, agent_id: str) -> str:
    return str(client.hget(deliveries_key(command_id), agent_id))


@pytest.fixture
def store(redis_client: redis.Redis) -> RedisCommandStore:
    store = RedisCommandStore(redis_client)
    store.add(
        Command("c1", CommandType.DEEP_TRACE, {}, Target(TargetKind.ALL), T0, T0 + 60),
        [Delivery("a")],
    )
    plan = RolloutPlan(window=1, max_failures=None, interval=0.0, expiry=60.0)
    store.add(
        Command("r1", CommandType.DEEP_TRACE, {}, Target(TargetKind.ALL), T0, None, rollout=plan),
        [Delivery("a")],
    )
    assert store.claim("r1", SENT, T0 + 3600).sent == ["a"]  # rewritten by cjson
    return store


@pytest.mark.parametrize("command_id", ["c1", "r1"], ids=["plain", "claimed-by-a-rollout"])
def test_marking_delivered_then_acking_writes_what_python_writes(
    store: RedisCommandStore, redis_client: redis.Redis, command_id: str
) -> None:
    sent = SENT if command_id == "r1" else None
    assert store.mark_delivered(command_id, ["a"], AT) == 1
    delivered = Delivery("a", DELIVERED, delivered_at=AT, sent_at=sent)
    assert text(redis_client, command_id, "a") == _encode_delivery(delivered)

    outcome = store.acknowledge(command_id, "a", RESULT, AT + 1, T0 + 3600)
    assert outcome is not None
    acked = Delivery("a", ACKNOWLEDGED, AT, AT + 1, RESULT, sent_at=sent)
    assert text(redis_client, command_id, "a") == _encode_delivery(acked)
    assert outcome.delivery == acked

"""A rollout's batches on the RedisBus: each batch names its targets and when it was sent,
so another worker writes it to those it holds, with that batch's expiresAt, without
reading the deliveries; a catch-up after a reconnect skips the targets not sent yet."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import redis

from agent_registry.core.models import Delivery
from agent_registry.core.rollout import RolloutPlan
from agent_registry.redis.bus import RedisBus
from agent_registry.redis.commands import RedisCommandStore
from agent_registry.streams.hub import StreamHub
from agent_registry.streams.sse import command_frame
from harness.clock import T0
from tests.redis.helpers import command

pytestmark = pytest.mark.redis

EXPIRY = 60.0
ROLLOUT = replace(command("r1"), expires_at=None, rollout=RolloutPlan(1, None, 0.0, EXPIRY))


@pytest.fixture
def store(redis_client: redis.Redis) -> RedisCommandStore:
    store = RedisCommandStore(redis_client)
    store.add(ROLLOUT, [Delivery("a"), Delivery("b")])
    return store


@pytest.fixture
def bus(redis_client: redis.Redis, hub: StreamHub, store: RedisCommandStore, clock) -> RedisBus:
    return RedisBus(redis_client, hub, store, clock, refresh_every=1.0)


def frames(hub: StreamHub, agent_id: str) -> list[bytes]:
    [subscription] = [s for s in hub.subscriptions() if s.agent_id == agent_id]
    return [subscription.queue.get_nowait()[1] for _ in range(len(subscription.queue))]


def test_a_batch_from_another_worker_is_written_with_its_own_expires_at(bus, hub, clock):
    hub.open("a")
    hub.open("b")
    clock.advance(1)  # streams opened at T0 + 1, before the batch was sent
    sent_at = T0 + 30
    message = {"origin": "other", "command": "r1", "agents": ["b"], "sentAt": sent_at}

    bus.handle(json.dumps(message))

    assert frames(hub, "a") == []  # not in this batch
    [frame] = frames(hub, "b")
    assert frame == command_frame(ROLLOUT.as_sent(sent_at))
    assert b'"expiresAt":"2026-03-11T10:17:00.000Z"' in frame


def test_a_batch_skips_streams_opened_after_it_was_sent(bus, hub, clock):
    clock.advance(40)
    hub.open("b")
    bus.handle(json.dumps({"origin": "other", "command": "r1", "agents": ["b"], "sentAt": T0}))
    assert frames(hub, "b") == []


def test_a_catch_up_writes_only_the_targets_sent(bus, hub, store):
    hub.open("a")
    hub.open("b")
    store.claim("r1", T0, T0 + 3600)  # the window is 1: "a" is sent, "b" waits
    bus.catch_up()

    assert frames(hub, "a") == [command_frame(ROLLOUT.as_sent(T0))]
    assert frames(hub, "b") == []

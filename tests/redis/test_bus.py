"""RedisBus against a real redis-server, a real StreamHub and a real RedisCommandStore."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
import redis
from redis.client import PubSub

from agent_registry.core.models import Command, Delivery, DeliveryStatus
from agent_registry.redis.bus import CHANNEL, RECONNECT_ON, RedisBus
from agent_registry.redis.commands import (
    EXPIRIES,
    RedisCommandStore,
    command_key,
    deliveries_key,
)
from agent_registry.streams.hub import END, StreamHub, Subscription
from agent_registry.streams.sse import command_frame
from harness.clock import T0, FakeClock
from harness.redis_server import RedisServer
from harness.wait import wait_until
from tests.redis.helpers import command, command_calls, run_patched

pytestmark = pytest.mark.redis

PENDING, DELIVERED = DeliveryStatus.PENDING, DeliveryStatus.DELIVERED
ACKNOWLEDGED = DeliveryStatus.ACKNOWLEDGED


@pytest.fixture
def store(redis_client: redis.Redis) -> RedisCommandStore:
    return RedisCommandStore(redis_client)


def make_bus(client: redis.Redis, hub: StreamHub, clock: FakeClock) -> RedisBus:
    return RedisBus(client, hub, RedisCommandStore(client), clock, refresh_every=1.0)


@pytest.fixture
def bus(redis_client: redis.Redis, hub: StreamHub, clock: FakeClock) -> RedisBus:
    """Not started: tests call publish, handle and catch_up directly."""
    return make_bus(redis_client, hub, clock)


def add(store: RedisCommandStore, cmd: Command, **statuses: DeliveryStatus) -> Command:
    """Store ``cmd`` with one delivery per keyword (agent id = status)."""
    store.add(cmd, [Delivery(agent_id, status) for agent_id, status in statuses.items()])
    return cmd


def drain(subscription: Subscription) -> list[str | None]:
    """Command ids queued on the stream, in order (None: told to end)."""
    items = [subscription.queue.get_nowait() for _ in range(len(subscription.queue))]
    return [END if item is END else item[0] for item in items]


def announce(bus: RedisBus, origin: str = "another-worker", **fields: str) -> None:
    bus.handle(json.dumps({"origin": origin, **fields}))


def open_streams(hub: StreamHub, agent_ids: Sequence[str]) -> dict[str, Subscription]:
    return {agent_id: hub.open(agent_id) for agent_id in agent_ids}


# -- publish --


def test_publish_queues_the_frame_on_local_streams_of_the_targets_only(
    bus: RedisBus, hub: StreamHub
) -> None:
    streams = open_streams(hub, ["a", "b", "c"])
    cmd = command("c1")
    bus.publish(cmd, ["a", "b", "elsewhere"])
    expected = (cmd.id, command_frame(cmd))
    assert [streams[a].queue.get_nowait() for a in ("a", "b")] == [expected, expected]
    assert drain(streams["c"]) == []


def published(client: redis.Redis, bus: RedisBus, cmd: Command, targets: list[str]) -> str:
    """The announcement ``bus.publish`` makes, as another process receives it."""
    pubsub: PubSub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    try:
        pubsub.subscribe(CHANNEL)
        bus.publish(cmd, targets)
        message = wait_until(lambda: pubsub.get_message(timeout=0.1), within=5)
    finally:
        pubsub.close()
    assert message, "no announcement on the channel"
    return str(message["data"])


def test_publish_announces_the_command_on_the_channel(
    bus: RedisBus, redis_client: redis.Redis
) -> None:
    data = published(redis_client, bus, command("c1"), ["a"])
    assert json.loads(data) == {
        "origin": bus.origin,
        "command": "c1",
        "agents": ["a"],
        "sentAt": T0,
    }


def test_another_process_writes_an_announced_command_to_its_targets_still_pending(
    redis_client: redis.Redis, hub: StreamHub, clock: FakeClock, store: RedisCommandStore
) -> None:
    """The announcement names the targets: the other processes read only the deliveries of
    those they hold (no HGETALL of them all), and skip the ones a cancel, an ack or another
    stream changed since it was sent."""
    sender = make_bus(redis_client, StreamHub(queue_size=8, clock=clock), clock)
    receiver = make_bus(redis_client, hub, clock)
    streams = open_streams(hub, ["b", "cancelled", "acked", "delivered"])
    cmd = add(
        store,
        command("c1"),
        a=PENDING,
        b=PENDING,
        cancelled=DeliveryStatus.CANCELLED,
        acked=ACKNOWLEDGED,
        delivered=DELIVERED,
    )
    data = published(redis_client, sender, cmd, ["a", "b", "cancelled", "acked", "delivered"])
    before = {
        name: command_calls(redis_client, name) for name in ("hgetall", "hget", "hmget", "exec")
    }

    receiver.handle(data)

    assert streams["b"].queue.get_nowait() == (cmd.id, command_frame(cmd))
    assert {agent: drain(s) for agent, s in streams.items()} == {
        "b": [],
        "cancelled": [],
        "acked": [],
        "delivered": [],
    }
    after = {name: command_calls(redis_client, name) - count for name, count in before.items()}
    assert after == {"hgetall": 1, "hget": 0, "hmget": 1, "exec": 1}


def test_a_command_to_more_targets_than_an_announcement_names_is_announced_by_its_id(
    redis_client: redis.Redis, bus: RedisBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("agent_registry.redis.bus.ANNOUNCED_TARGETS", 2)
    data = published(redis_client, bus, command("c1"), ["a", "b", "c"])
    assert json.loads(data) == {"origin": bus.origin, "command": "c1"}


# -- handle --


def test_handle_ignores_messages_of_its_own_origin(
    bus: RedisBus, hub: StreamHub, store: RedisCommandStore
) -> None:
    stream = hub.open("a")
    add(store, command("c1"), a=PENDING)
    announce(bus, origin=bus.origin, command="c1")
    announce(bus, origin=bus.origin, end="a", token=stream.token)
    assert drain(stream) == []
    assert not stream.closed


def test_handle_queues_a_pending_command_to_the_local_stream(
    bus: RedisBus, hub: StreamHub, store: RedisCommandStore
) -> None:
    stream = hub.open("a")
    add(store, command("c1"), a=PENDING)
    announce(bus, command="c1")
    assert drain(stream) == ["c1"]


def test_handle_skips_delivered_and_acknowledged_deliveries(
    bus: RedisBus, hub: StreamHub, store: RedisCommandStore
) -> None:
    streams = open_streams(hub, ["pending", "delivered", "acked"])
    add(store, command("c1"), pending=PENDING, delivered=DELIVERED, acked=ACKNOWLEDGED)
    announce(bus, command="c1")
    assert {agent: drain(s) for agent, s in streams.items()} == {
        "pending": ["c1"],
        "delivered": [],
        "acked": [],
    }


def test_handle_skips_pending_agents_without_a_local_stream(
    bus: RedisBus, hub: StreamHub, store: RedisCommandStore
) -> None:
    stream = hub.open("here")
    add(store, command("c1"), here=PENDING, away=PENDING)
    announce(bus, command="c1")
    assert drain(stream) == ["c1"]
    assert not hub.is_connected("away")


def test_handle_skips_streams_opened_after_the_command(
    bus: RedisBus, hub: StreamHub, store: RedisCommandStore, clock: FakeClock
) -> None:
    add(store, command("c1", created=T0), a=PENDING)
    clock.advance(1)
    stream = hub.open("a")
    announce(bus, command="c1")
    assert drain(stream) == []


def test_handle_of_an_unknown_command_queues_nothing(bus: RedisBus, hub: StreamHub) -> None:
    stream = hub.open("a")
    announce(bus, command="gone")
    assert drain(stream) == []


def test_handle_ends_the_local_stream_with_the_token(bus: RedisBus, hub: StreamHub) -> None:
    stream = hub.open("a")
    announce(bus, end="a", token=stream.token)
    assert stream.closed
    assert drain(stream) == [END]


def test_handle_leaves_a_local_stream_with_another_token_open(
    bus: RedisBus, hub: StreamHub
) -> None:
    stream = hub.open("a")
    announce(bus, end="a", token="an-older-stream")
    assert not stream.closed
    assert drain(stream) == []


# -- catch_up --


def test_catch_up_queues_pending_deliveries_of_unexpired_commands(
    bus: RedisBus, hub: StreamHub, store: RedisCommandStore, clock: FakeClock
) -> None:
    stream = hub.open("a")
    add(store, command("expired", expires=T0 + 10), a=PENDING)
    add(store, command("fresh", expires=T0 + 60), a=PENDING)
    add(store, command("delivered", expires=T0 + 60), a=DELIVERED)
    clock.advance(30)
    bus.catch_up()
    assert drain(stream) == ["fresh"]


def test_catch_up_with_no_stream_open_does_not_read_the_store(
    hub: StreamHub, dead_client: redis.Redis, clock: FakeClock
) -> None:
    """With no stream here there is nothing to queue: not even an outage can fail it."""
    make_bus(dead_client, hub, clock).catch_up()
    assert len(hub) == 0


def test_a_command_announced_and_caught_up_is_queued_once(
    bus: RedisBus, hub: StreamHub, store: RedisCommandStore
) -> None:
    stream = hub.open("a")
    add(store, command("c1"), a=PENDING)
    announce(bus, command="c1")
    bus.catch_up()
    announce(bus, command="c1")
    assert drain(stream) == ["c1"]


# -- outages met by the subscriber --


@pytest.mark.parametrize("step", ["catch_up", "handle"])
def test_an_outage_met_by_the_subscriber_raises_what_it_reconnects_on(
    step: str, hub: StreamHub, dead_client: redis.Redis, clock: FakeClock
) -> None:
    """Regression: the store's StoreUnavailable escaped the subscriber loop, which caught only
    redis-py's errors, and stopped cross-worker delivery until the worker restarted."""
    hub.open("a")
    offline = make_bus(dead_client, hub, clock)
    with pytest.raises(RECONNECT_ON):
        if step == "catch_up":
            offline.catch_up()
        else:
            announce(offline, command="c1")


# -- what one message does (issue 15, row 3) --


class Recorder:
    """A BusMonitor that notes what it is told."""

    def __init__(self) -> None:
        self.states: list[bool] = []
        self.restarts = 0
        self.skips = 0

    def subscribed(self, now: bool) -> None:
        self.states.append(now)

    def restarted(self) -> None:
        self.restarts += 1

    def skipped(self) -> None:
        self.skips += 1


def store_undecodable(
    client: redis.Redis, command_id: str, agent_id: str, created: float = T0
) -> None:
    """A command the store cannot read back (an unknown type), written with the store's key
    layout: what a bug, a hand edit or an older version could leave in Redis."""
    client.hset(
        command_key(command_id),
        mapping={
            "id": command_id,
            "type": "no-such-type",
            "payload": "{}",
            "targetKind": "agent",
            "targetValue": agent_id,
            "createdAt": repr(created),
            "expiresAt": repr(created + 60),
            "createdBy": "",
            "open": 1,
        },
    )
    client.hset(
        deliveries_key(command_id),
        agent_id,
        json.dumps(
            {"status": "PENDING", "deliveredAt": None, "acknowledgedAt": None, "result": None}
        ),
    )
    client.zadd(EXPIRIES, {command_id: created + 60})


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        "[1, 2]",
        json.dumps({"origin": "another-worker", "end": "a"}),  # no token
        json.dumps({"origin": "another-worker", "command": "bad"}),  # undecodable command
    ],
    ids=["not-json", "not-an-object", "end-without-token", "undecodable-command"],
)
def test_one_bad_message_is_skipped_and_the_next_one_is_handled(
    message: str, bus: RedisBus, hub: StreamHub, store: RedisCommandStore, redis_client
) -> None:
    """Regression (issue 15, row 3): one message that raised ended the subscriber greenlet,
    and the worker relayed nothing from other workers until it restarted."""
    stream = hub.open("a")
    store_undecodable(redis_client, "bad", "a")
    add(store, command("good"), a=PENDING)
    recorder = Recorder()
    bus.watch(recorder)
    bus.handle(message)
    announce(bus, command="good")
    assert drain(stream) == ["good"]
    assert (bus.skipped, recorder.skips) == (1, 1)


def test_catch_up_skips_a_command_it_cannot_read_and_queues_the_others(
    bus: RedisBus, hub: StreamHub, store: RedisCommandStore, redis_client, caplog
) -> None:
    """Regression (issue 15, row 3): the catch-up after a reconnect re-read a bad command and
    the subscriber died; every catch-up reads it again, and it is logged once."""
    stream = hub.open("a")
    add(store, command("before", expires=T0 + 59), a=PENDING)
    store_undecodable(redis_client, "bad", "a")  # expires at T0 + 60
    add(store, command("after", expires=T0 + 61), a=PENDING)
    with caplog.at_level("DEBUG", logger="agent_registry.redis.bus"):
        bus.catch_up()
        bus.catch_up()
    assert drain(stream) == ["before", "after"]
    assert bus.skipped == 2
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [(r.command_id, r.exc_info is not None) for r in errors] == [("bad", True)]


def test_relays_while_not_started_and_tells_the_monitor_at_each_change(
    bus: RedisBus,
) -> None:
    recorder = Recorder()
    bus.watch(recorder)
    assert bus.relays()  # not started: nothing is missing yet
    assert recorder.states == [False]


# -- two started buses (workers) --


def test_a_publish_on_one_worker_reaches_a_stream_on_another(redis_server: RedisServer) -> None:
    """Run in a gevent-patched child (as a gunicorn worker is): see two_workers.py."""
    redis_server.flush()
    assert run_patched("tests.redis.two_workers", redis_server.url) == {
        "subscribed": True,
        "arrived": True,
        "queued": ["c1"],
        "leaked_greenlets": 0,
        "unsubscribed": True,
    }

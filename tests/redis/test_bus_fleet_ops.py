"""RedisBus for the fleet operations: cancel events and ending a deleted agent's stream, in
this process and as announced by another one (a real redis-server, a real StreamHub)."""

from __future__ import annotations

import json

import pytest
import redis
from redis.client import PubSub

from agent_registry.redis.bus import CHANNEL, RedisBus
from agent_registry.redis.commands import RedisCommandStore
from agent_registry.streams.hub import END, StreamHub, Subscription, cancel_key
from agent_registry.streams.sse import cancel_frame
from harness.clock import FakeClock
from harness.wait import wait_until

pytestmark = pytest.mark.redis


@pytest.fixture
def bus(redis_client: redis.Redis, hub: StreamHub, clock: FakeClock) -> RedisBus:
    """Not started: tests call cancel, disconnect and handle directly."""
    return RedisBus(redis_client, hub, RedisCommandStore(redis_client), clock, refresh_every=1.0)


def queued(subscription: Subscription) -> list[object]:
    items = [subscription.queue.get_nowait() for _ in range(len(subscription.queue))]
    return [END if item is END else item for item in items]


def announced(redis_client: redis.Redis, action) -> dict[str, object]:
    # redis-py leaves Redis.pubsub unannotated; what it returns is a typed PubSub.
    pubsub: PubSub = redis_client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    try:
        pubsub.subscribe(CHANNEL)
        action()
        message = wait_until(lambda: pubsub.get_message(timeout=0.1), within=5)
    finally:
        pubsub.close()
    assert message, "nothing was announced"
    return dict(json.loads(message["data"]))


def test_cancel_queues_the_cancel_event_on_local_streams_and_announces_the_targets(
    bus: RedisBus, hub: StreamHub, redis_client: redis.Redis
) -> None:
    streams = {agent_id: hub.open(agent_id) for agent_id in ("a", "b", "c")}

    message = announced(redis_client, lambda: bus.cancel("c1", ["a", "b", "elsewhere"]))

    expected = (cancel_key("c1"), cancel_frame("c1"))
    assert queued(streams["a"]) == [expected]
    assert queued(streams["b"]) == [expected]
    assert queued(streams["c"]) == []
    assert message == {"origin": bus.origin, "cancel": "c1", "agents": ["a", "b", "elsewhere"]}


class NoReads:
    """A command store that fails the test if it is read."""

    def get(self, command_id: str) -> None:
        raise AssertionError(f"read command {command_id}")

    def unexpired(self, now: float, limit: int) -> list[object]:
        raise AssertionError("read unexpired commands")


def test_an_announced_cancel_reaches_the_targets_streaming_here_without_a_store_read(
    hub: StreamHub, redis_client: redis.Redis, clock: FakeClock
) -> None:
    bus = RedisBus(redis_client, hub, NoReads(), clock, refresh_every=1.0)  # type: ignore[arg-type]
    streams = {agent_id: hub.open(agent_id) for agent_id in ("a", "b")}

    bus.handle(json.dumps({"origin": "another-worker", "cancel": "c1", "agents": ["a", "z"]}))

    assert queued(streams["a"]) == [(cancel_key("c1"), cancel_frame("c1"))]
    assert queued(streams["b"]) == []


def test_a_cancel_announced_twice_is_queued_once(bus: RedisBus, hub: StreamHub) -> None:
    stream = hub.open("a")
    message = json.dumps({"origin": "another-worker", "cancel": "c1", "agents": ["a"]})
    bus.handle(message)
    bus.handle(message)
    assert queued(stream) == [(cancel_key("c1"), cancel_frame("c1"))]


def test_the_cancel_event_is_not_taken_for_a_repeat_of_its_command(
    bus: RedisBus, hub: StreamHub
) -> None:
    stream = hub.open("a")
    assert stream.offer(("c1", b"the command's frame"))
    bus.cancel("c1", ["a"])
    assert [item[0] for item in queued(stream)] == ["c1", cancel_key("c1")]  # type: ignore[index]


def test_disconnect_ends_the_local_stream_and_announces_it(
    bus: RedisBus, hub: StreamHub, redis_client: redis.Redis
) -> None:
    stream = hub.open("a")
    other = hub.open("b")

    message = announced(redis_client, lambda: bus.disconnect("a"))

    assert stream.closed and queued(stream) == [END]
    assert not other.closed
    assert message == {"origin": bus.origin, "disconnect": "a"}


def test_an_announced_disconnect_ends_whichever_stream_the_agent_has_here(
    bus: RedisBus, hub: StreamHub
) -> None:
    stream = hub.open("a")
    bus.handle(json.dumps({"origin": "another-worker", "disconnect": "a"}))
    assert stream.closed
    # The stream-replacement message, with a token, still ends only that stream.
    newer = hub.open("a")
    bus.handle(json.dumps({"origin": "another-worker", "end": "a", "token": "not-this-one"}))
    assert not newer.closed

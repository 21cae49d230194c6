"""The operator event stream across processes: notices on the Redis bus, on a real server.

Two apps share one redis-server, as two workers would. The pytest process is not
monkey-patched, so no subscriber greenlet runs here (it would block the thread): the test
reads the channel itself and hands each message to the other app's bus, as its
subscriber would. A real subscriber in real workers is tested in tests/e2e.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from redis.client import PubSub

from agent_registry import create_app
from agent_registry.redis.bus import CHANNEL, RedisBus
from harness.api_actions import Api
from harness.clock import FakeClock
from harness.redis_server import RedisServer
from tests.api.operator_stream import OperatorStream, of, settle
from tests.conftest import FAKE_CLOCK_SWEEP_INTERVAL

pytestmark = pytest.mark.redis


def worker(url: str, clock: FakeClock) -> Flask:
    app = create_app(
        {
            "AGENT_REGISTRY_STORE": url,
            "AGENT_REGISTRY_KEEPALIVE_SECONDS": 0.3,
            "AGENT_REGISTRY_SWEEP_INTERVAL_SECONDS": FAKE_CLOCK_SWEEP_INTERVAL,
        },
        clock=clock,
    )
    # Announce and take notices as a started worker does (the sweeps and the subscriber
    # stay off: the test drives them).
    app.extensions["agent_registry"].operator_events.start()
    return app


@pytest.fixture
def channel(redis_client: redis.Redis) -> Iterator[PubSub]:
    # redis-py leaves Redis.pubsub unannotated; what it returns is a typed PubSub.
    pubsub: PubSub = redis_client.pubsub()  # type: ignore[no-untyped-call]
    pubsub.subscribe(CHANNEL)
    confirmed = pubsub.get_message(timeout=5)
    assert confirmed is not None and confirmed["type"] == "subscribe"
    yield pubsub
    pubsub.close()


@pytest.fixture
def apps(redis_server: RedisServer, redis_client: redis.Redis, clock: FakeClock) -> Iterator[Any]:
    built = [worker(redis_server.url, clock), worker(redis_server.url, clock)]
    yield built
    for app in built:
        runtime = app.extensions["agent_registry"]
        runtime.operator_events.stop()
        assert settle(runtime.operator_events.idle)


def relay(channel: PubSub, to: Flask) -> list[dict[str, Any]]:
    """Hand every message waiting on the channel to ``to``'s bus, as its subscriber would;
    the messages, decoded."""
    bus = to.extensions["agent_registry"].bus
    assert isinstance(bus, RedisBus)
    seen = []
    while (message := channel.get_message(timeout=0.2)) is not None:
        bus.handle(message["data"])
        seen.append(json.loads(message["data"]))
    return seen


def test_an_operator_stream_sees_agents_and_commands_changed_through_another_worker(
    apps: list[Flask], channel: PubSub
) -> None:
    here, there = apps
    stream = OperatorStream(here.test_client())
    assert stream.next_event().data["LIVE"] == 0
    api = Api(there.test_client())

    api.register("agent-1", "group-a")
    assert settle(there.extensions["agent_registry"].operator_events.idle)  # announced
    notices = relay(channel, here)

    assert [n["fleet"] for n in notices if "fleet" in n] == [{"agents": ["agent-1"]}]
    read = stream.until(of("agent", id="agent-1", group="group-a", state="LIVE"))
    # The counts are read from the shared store: they may have come first.
    assert any(map(of("fleet", LIVE=1), read)) or stream.until(of("fleet", LIVE=1))

    sent = api.send("agent-1/commands")
    assert api.ack("agent-1", sent.json["commandId"]).status_code == 200
    assert settle(there.extensions["agent_registry"].operator_events.idle)
    relay(channel, here)

    def acked(e: Any) -> bool:
        return e.event == "command" and e.data["summary"]["acknowledged"] == 1

    assert stream.until(acked)[-1].data["commandId"] == sent.json["commandId"]

    assert there.test_client().delete("/api/v1/agents/agent-1").status_code == 204
    assert settle(there.extensions["agent_registry"].operator_events.idle)
    relay(channel, here)
    assert stream.until(of("agent", id="agent-1", deleted=True))
    stream.close()


def test_a_worker_ignores_its_own_notices_and_a_reconnect_resends_the_counts(
    apps: list[Flask], channel: PubSub
) -> None:
    here, _ = apps
    stream = OperatorStream(here.test_client())
    stream.next_event()
    Api(here.test_client()).register("agent-1")
    assert stream.until(of("agent", id="agent-1"))
    assert stream.until(of("fleet", LIVE=1))
    relay(channel, here)  # its own announcement: nothing more
    assert [e.event for e in stream.read_for(0.6)] == []

    # Another process registers while this one's subscriber was away: the notice is lost;
    # the catch-up after the reconnect re-reads the counts.
    Api(apps[1].test_client()).register("agent-2")
    assert settle(apps[1].extensions["agent_registry"].operator_events.idle)
    channel.get_message(timeout=0.2)  # lost
    here.extensions["agent_registry"].bus.catch_up()

    assert stream.until(of("fleet", LIVE=2))
    stream.close()

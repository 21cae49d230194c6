"""Clients on the session's real redis-server (flushed per test), and one on a dead port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from agent_registry.redis.client import connect
from agent_registry.streams.hub import StreamHub
from harness.clock import FakeClock
from harness.redis_server import RedisServer
from harness.sockets import HOST, unused_port


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client as the app builds it, on an empty database."""
    redis_server.flush()
    client = connect(redis_server.url)
    yield client
    client.connection_pool.disconnect()


@pytest.fixture
def dead_client() -> Iterator[redis.Redis]:
    """A client as the app builds it, pointed at a port nothing listens on (an outage)."""
    client = connect(f"redis://{HOST}:{unused_port()}/0")
    yield client
    client.connection_pool.disconnect()


@pytest.fixture
def hub(clock: FakeClock) -> Iterator[StreamHub]:
    """This process's streams; every one still open is closed after the test."""
    streams = StreamHub(queue_size=8, clock=clock)
    yield streams
    for subscription in streams.subscriptions():
        streams.close(subscription)

"""The stores under contract: each test runs on the memory store and on a real Redis."""

from __future__ import annotations

import pytest

from agent_registry.redis.agents import RedisAgentStore
from agent_registry.redis.client import connect
from agent_registry.redis.commands import RedisCommandStore
from agent_registry.stores.memory import MemoryAgentStore, MemoryCommandStore


@pytest.fixture(params=["memory", "redis"])
def stores(request):
    """(agent store, command store) of one kind, empty."""
    if request.param == "memory":
        yield MemoryAgentStore(), MemoryCommandStore()
        return
    server = request.getfixturevalue("redis_server")
    server.flush()
    client = connect(server.url)
    yield RedisAgentStore(client), RedisCommandStore(client)
    client.connection_pool.disconnect()


@pytest.fixture
def agents(stores):
    return stores[0]


@pytest.fixture
def commands(stores):
    return stores[1]

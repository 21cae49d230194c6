"""Group commit batches go out on a held connection (``HeldConnection``): no pool checkout
per batch, taken only at the first batch, and safe when a call is killed midway."""

from __future__ import annotations

import pytest
import redis

from agent_registry.core.acknowledgement import AckVerdict
from agent_registry.core.models import Delivery, DeliveryStatus, HeartbeatOutcome
from agent_registry.errors import StoreUnavailable
from agent_registry.redis.agents import RedisAgentStore
from agent_registry.redis.client import connect
from agent_registry.redis.commands import RedisCommandStore
from harness.clock import T0
from harness.redis_server import RedisServer
from tests.redis.helpers import command, run_patched
from tests.redis.test_ack_group_commit import ack
from tests.redis.test_group_commit import registered

pytestmark = pytest.mark.redis


class Checkouts:
    """Counts the connections taken out of a client's pool."""

    def __init__(self, client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        pool = client.connection_pool
        take = pool.get_connection

        def counted(*args, **kwargs):
            self.count += 1
            return take(*args, **kwargs)

        monkeypatch.setattr(pool, "get_connection", counted)


def connections_received(client: redis.Redis) -> int:
    return int(client.info("stats")["total_connections_received"])


def test_heartbeat_batches_take_one_connection_and_keep_it(redis_client, monkeypatch):
    store = RedisAgentStore(redis_client, group_commit=True)
    agents = [registered(store, f"a{index:02}") for index in range(20)]
    opened = connections_received(redis_client)
    checkouts = Checkouts(redis_client, monkeypatch)
    for index, agent in enumerate(agents):  # one after another: a batch each
        store.heartbeat(agent.id, T0 + index, T0 + index + 90)
    assert store.heartbeat_batches is not None and store.heartbeat_batches.batches == 20
    assert checkouts.count == 1
    assert connections_received(redis_client) - opened <= 1


def test_ack_batches_take_one_connection_and_keep_it(redis_client, monkeypatch):
    store = RedisCommandStore(redis_client, group_commit=True)
    agent_ids = [f"a{index:02}" for index in range(20)]
    delivered = [Delivery(i, DeliveryStatus.DELIVERED, delivered_at=T0) for i in agent_ids]
    store.add(command("c1"), delivered)
    checkouts = Checkouts(redis_client, monkeypatch)
    for agent_id in agent_ids:  # one after another: a batch each
        assert ack(store, agent_id) is AckVerdict.RECORDED
    assert store.ack_batches is not None and store.ack_batches.batches == 20
    assert checkouts.count == 1


def test_without_group_commit_the_pool_serves_each_call(redis_client, monkeypatch):
    """Threads (or tests) call the store at once: no single connection to queue them on."""
    store = RedisAgentStore(redis_client, group_commit=False)
    agents = [registered(store, f"b{index:02}") for index in range(5)]
    store.heartbeat(agents[0].id, T0, T0 + 90)  # loads the script (a NOSCRIPT retry is a call)
    checkouts = Checkouts(redis_client, monkeypatch)
    for agent in agents:
        store.heartbeat(agent.id, T0 + 1, T0 + 91)
    assert checkouts.count == 5


def test_a_store_with_group_commit_is_built_while_redis_is_down(dead_client):
    agents = RedisAgentStore(dead_client, group_commit=True)  # takes no connection yet
    commands = RedisCommandStore(dead_client, group_commit=True)
    with pytest.raises(StoreUnavailable):
        agents.heartbeat("a1", T0, T0 + 90)
    with pytest.raises(StoreUnavailable):
        ack(commands, "a1")


def test_a_call_killed_midway_leaves_no_reply_for_the_next(redis_server: RedisServer):
    seen = run_patched("tests.redis.killed_mid_call", redis_server.url)
    # The BLPOP died with its connection: "late" stays in the list, and the next call on
    # the held connection gets its own reply.
    assert seen == {"blocked": True, "killed": True, "unblocked": True, "after": "after", "left": 1}


def test_a_held_connection_connects_again_after_redis_restarts(tmp_path):
    redis_server = RedisServer(tmp_path).start()
    try:
        store = RedisAgentStore(connect(redis_server.url), group_commit=True)
        agent = registered(store, "a1")
        assert store.heartbeat(agent.id, T0 + 1, T0 + 91) is HeartbeatOutcome.RECORDED
        redis_server.stop()
        with pytest.raises(StoreUnavailable):
            store.heartbeat(agent.id, T0 + 2, T0 + 92)
        redis_server.start()  # the same port, no data kept
        assert store.heartbeat(agent.id, T0 + 3, T0 + 93) is HeartbeatOutcome.UNKNOWN
    finally:
        redis_server.stop()

"""An agent's command index: scored in whole microseconds, and entries an older version
scored in seconds still found, after the newer ones, with or without ``since``."""

from __future__ import annotations

import pytest
import redis

from agent_registry.core.models import Delivery
from agent_registry.redis.commands import RedisCommandStore, agent_commands_key
from harness.clock import T0
from tests.redis.helpers import command

pytestmark = pytest.mark.redis


def test_a_command_is_indexed_at_its_creation_time_in_whole_microseconds(
    redis_client: redis.Redis,
) -> None:
    store = RedisCommandStore(redis_client)
    store.add(command("c1", created=T0 + 0.1234567), [Delivery("a")])

    ((member, score),) = redis_client.zrange(agent_commands_key("a"), 0, -1, withscores=True)

    assert (member, score) == ("c1", round((T0 + 0.1234567) * 1_000_000))
    assert score == int(score)


def test_commands_an_older_version_indexed_in_seconds_are_read_after_the_newer_ones(
    redis_client: redis.Redis,
) -> None:
    store = RedisCommandStore(redis_client)
    for number in (1, 2, 3):
        store.add(command(f"old{number}", created=T0 + number), [Delivery("a")])
        # Scored as versions before microsecond scores wrote them.
        redis_client.zadd(agent_commands_key("a"), {f"old{number}": T0 + number})
    store.add(command("new", created=T0 + 4), [Delivery("a")])

    assert [c.id for c, _ in store.for_agent("a")] == ["new", "old3", "old2", "old1"]
    assert [c.id for c, _ in store.for_agent("a", since=T0 + 2)] == ["new", "old3", "old2"]
    assert [c.id for c, _ in store.for_agent("a", since=T0 + 4)] == ["new"]
    assert [c.id for c, _ in store.for_agent("a", since=T0 + 5)] == []

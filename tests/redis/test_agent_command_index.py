"""An agent's command index: scored in whole microseconds; entries that a version before
that scored in seconds (still written by such workers during an upgrade) read in their
place in time, with or without ``since``."""

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


def test_entries_scored_in_seconds_are_read_in_their_place_in_time(
    redis_client: redis.Redis,
) -> None:
    store = RedisCommandStore(redis_client)
    for number in (1, 2, 3, 4):
        store.add(command(f"c{number}", created=T0 + number), [Delivery("a")])
    # c1 and c3 as a worker of the version before scored them (during an upgrade, c3 is
    # newer than c2, which a newer worker wrote).
    redis_client.zadd(agent_commands_key("a"), {"c1": T0 + 1, "c3": T0 + 3})

    assert [c.id for c, _ in store.for_agent("a")] == ["c4", "c3", "c2", "c1"]
    assert [c.id for c, _ in store.for_agent("a", since=T0 + 2)] == ["c4", "c3", "c2"]
    assert [c.id for c, _ in store.for_agent("a", since=T0 + 3)] == ["c4", "c3"]
    assert [c.id for c, _ in store.for_agent("a", since=T0 + 5)] == []


def test_since_excludes_a_command_created_within_the_scores_rounding_before_it(
    redis_client: redis.Redis,
) -> None:
    store = RedisCommandStore(redis_client)
    store.add(command("c1", created=T0 + 1), [Delivery("a")])

    # T0 + 1 + 0.0000004 rounds to the same microsecond as the command's creation.
    assert store.for_agent("a", since=T0 + 1.0000004) == []
    assert [c.id for c, _ in store.for_agent("a", since=T0 + 1)] == ["c1"]

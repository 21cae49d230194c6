"""RedisPresence against a real redis-server: claims, tokens, TTLs, refresh and outages."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import redis

from agent_registry.errors import StoreUnavailable
from agent_registry.redis.client import OUTAGE_ERRORS
from agent_registry.redis.presence import EXPIRIES, RedisPresence, presence_key
from tests.redis.helpers import command_calls

pytestmark = pytest.mark.redis

TTL_SECONDS = 30.0
TTL_MS = int(TTL_SECONDS * 1000)


@dataclass
class FakeStream:
    """An ``OpenStream``: what presence needs to know of one open event stream."""

    agent_id: str
    token: str
    ended: bool = False

    def end(self) -> None:
        self.ended = True


Replaced = list[tuple[str, str]]


@pytest.fixture
def replaced() -> Replaced:
    """What ``on_replaced`` was told: (agent id, the replaced stream's token)."""
    return []


def make_presence(client: redis.Redis, replaced: Replaced) -> RedisPresence:
    return RedisPresence(client, TTL_SECONDS, lambda agent, token: replaced.append((agent, token)))


@pytest.fixture
def presence(redis_client: redis.Redis, replaced: Replaced) -> RedisPresence:
    return make_presence(redis_client, replaced)


@pytest.fixture
def offline(dead_client: redis.Redis, replaced: Replaced) -> RedisPresence:
    """Presence whose Redis cannot be reached."""
    return make_presence(dead_client, replaced)


def holder(client: redis.Redis, agent_id: str) -> str | None:
    value = client.get(presence_key(agent_id))
    assert value is None or isinstance(value, str)
    return value


def ttl_ms(client: redis.Redis, agent_id: str) -> int:
    value = client.pttl(presence_key(agent_id))
    assert isinstance(value, int)
    return value


def has_fresh_ttl(client: redis.Redis, agent_id: str) -> bool:
    """Expires within the configured TTL, and most of it is left (no test takes 5 s)."""
    return TTL_MS - 5000 < ttl_ms(client, agent_id) <= TTL_MS


def test_opened_claims_the_agent_with_the_stream_token_and_a_ttl(
    presence: RedisPresence, redis_client: redis.Redis
) -> None:
    presence.opened(FakeStream("a", "t1"))
    assert holder(redis_client, "a") == "t1"
    assert has_fresh_ttl(redis_client, "a")


def test_a_second_stream_with_another_token_reports_the_old_one_replaced(
    presence: RedisPresence, redis_client: redis.Redis, replaced: Replaced
) -> None:
    presence.opened(FakeStream("a", "t1"))
    presence.opened(FakeStream("a", "t2"))
    assert replaced == [("a", "t1")]
    assert holder(redis_client, "a") == "t2"


def test_reopening_with_the_same_token_replaces_nothing(
    presence: RedisPresence, replaced: Replaced
) -> None:
    presence.opened(FakeStream("a", "t1"))
    presence.opened(FakeStream("a", "t1"))
    assert replaced == []


def test_the_first_stream_of_an_agent_replaces_nothing(
    presence: RedisPresence, replaced: Replaced
) -> None:
    presence.opened(FakeStream("a", "t1"))
    presence.opened(FakeStream("b", "t2"))
    assert replaced == []


def test_closed_releases_the_streams_own_claim(
    presence: RedisPresence, redis_client: redis.Redis
) -> None:
    stream = FakeStream("a", "t1")
    presence.opened(stream)
    presence.closed(stream)
    assert holder(redis_client, "a") is None


def test_closed_leaves_a_newer_streams_claim_in_place(
    presence: RedisPresence, redis_client: redis.Redis
) -> None:
    old, new = FakeStream("a", "t1"), FakeStream("a", "t2")
    presence.opened(old)
    presence.opened(new)
    presence.closed(old)
    assert holder(redis_client, "a") == "t2"


def test_refresh_renews_the_ttl_of_local_claims(
    presence: RedisPresence, redis_client: redis.Redis
) -> None:
    stream = FakeStream("a", "t1")
    presence.opened(stream)
    redis_client.pexpire(presence_key("a"), 1000)
    assert presence.refresh([stream]) == []
    assert holder(redis_client, "a") == "t1"
    assert has_fresh_ttl(redis_client, "a")


def test_refresh_returns_the_streams_whose_claim_another_token_holds(
    presence: RedisPresence, redis_client: redis.Redis
) -> None:
    kept, lost = FakeStream("a", "t1"), FakeStream("b", "t2")
    presence.opened(kept)
    presence.opened(lost)
    redis_client.set(presence_key("b"), "elsewhere", px=TTL_MS)
    assert presence.refresh([kept, lost]) == [lost]
    assert holder(redis_client, "b") == "elsewhere"


def test_refresh_retakes_a_claim_that_lapsed(
    presence: RedisPresence, redis_client: redis.Redis
) -> None:
    stream = FakeStream("a", "t1")
    presence.opened(stream)
    redis_client.delete(presence_key("a"))
    assert presence.refresh([stream]) == []
    assert holder(redis_client, "a") == "t1"
    assert has_fresh_ttl(redis_client, "a")


def test_refresh_of_no_streams_returns_nothing(presence: RedisPresence) -> None:
    assert presence.refresh([]) == []


def test_refresh_renews_many_claims_in_a_script_call_per_batch_in_their_order(
    presence: RedisPresence, redis_client: redis.Redis
) -> None:
    """1 200 claims: three renewal calls of at most 500 and the prune, not 1 201 calls; the
    replaced streams (one in each batch) are found where they are."""
    streams = [FakeStream(f"a{index:04}", f"t{index}") for index in range(1_200)]
    for stream in streams:
        presence.opened(stream)
    replaced = [streams[7], streams[650], streams[1_199]]
    for stream in replaced:
        redis_client.set(presence_key(stream.agent_id), "elsewhere", px=TTL_MS)
    redis_client.pexpire(presence_key(streams[999].agent_id), 1000)
    redis_client.zadd(EXPIRIES, {streams[1_100].agent_id: 1})  # lapsed in the index
    before = command_calls(redis_client, "evalsha")

    assert presence.refresh(streams) == replaced
    assert command_calls(redis_client, "evalsha") - before == 4
    assert has_fresh_ttl(redis_client, streams[999].agent_id)
    assert holder(redis_client, streams[650].agent_id) == "elsewhere"
    # Each renewed claim moved its own agent's expiry in the index (one in the last batch),
    # so the prune that ends the refresh left every one.
    assert redis_client.zscore(EXPIRIES, streams[1_100].agent_id) == pytest.approx(
        redis_client.zscore(EXPIRIES, streams[0].agent_id), abs=1_000
    )
    assert redis_client.zcard(EXPIRIES) == 1_200


def test_is_connected_reads_the_claim(presence: RedisPresence, redis_client: redis.Redis) -> None:
    stream = FakeStream("a", "t1")
    assert not presence.is_connected("a")
    presence.opened(stream)
    assert presence.is_connected("a")
    presence.closed(stream)
    assert not presence.is_connected("a")


def test_connected_returns_the_claimed_agents_among_those_asked(
    presence: RedisPresence, redis_client: redis.Redis
) -> None:
    presence.opened(FakeStream("a", "t1"))
    redis_client.set(presence_key("b"), "elsewhere", px=TTL_MS)
    assert presence.connected(["a", "b", "c"]) == {"a", "b"}
    assert presence.connected([]) == set()


def test_connected_count_follows_claims_opened_replaced_and_released(
    presence: RedisPresence,
) -> None:
    assert presence.connected_count() == 0
    a1, b = FakeStream("a", "t1"), FakeStream("b", "t2")
    presence.opened(a1)
    presence.opened(b)
    assert presence.connected_count() == 2
    a2 = FakeStream("a", "t3")
    presence.opened(a2)  # the same agent on a new stream: still one
    assert presence.connected_count() == 2
    presence.closed(a1)  # the replaced stream's cleanup leaves the new claim counted
    assert presence.connected_count() == 2
    presence.closed(a2)
    assert presence.connected_count() == 1
    presence.closed(b)
    assert presence.connected_count() == 0


def test_connected_count_leaves_out_lapsed_claims_and_refresh_prunes_them(
    presence: RedisPresence, redis_client: redis.Redis
) -> None:
    """A worker killed with SIGKILL neither releases nor renews: its claims only lapse."""
    kept, lapsed = FakeStream("a", "t1"), FakeStream("b", "t2")
    presence.opened(kept)
    presence.opened(lapsed)
    redis_client.zadd(EXPIRIES, {"b": 1})  # as if b's claim expired long ago
    assert presence.connected_count() == 1
    assert presence.refresh([kept]) == []
    assert redis_client.zrange(EXPIRIES, 0, -1) == ["a"]
    assert presence.connected_count() == 1


def test_refresh_renews_the_counted_expiry_and_retakes_a_lapsed_one(
    presence: RedisPresence, redis_client: redis.Redis
) -> None:
    stream = FakeStream("a", "t1")
    presence.opened(stream)
    redis_client.delete(presence_key("a"))
    redis_client.zadd(EXPIRIES, {"a": 1})
    assert presence.connected_count() == 0
    assert presence.refresh([stream]) == []
    assert presence.connected_count() == 1
    # The index says when the claim expires: within the TTL from now, as the key does.
    score = redis_client.zscore(EXPIRIES, "a")
    seconds, micros = redis_client.time()
    now_ms = seconds * 1000 + micros // 1000
    assert score is not None and now_ms + TTL_MS - 5000 < score <= now_ms + TTL_MS


def test_a_replaced_stream_renews_nothing_in_the_index(
    presence: RedisPresence, redis_client: redis.Redis
) -> None:
    stream = FakeStream("a", "t1")
    presence.opened(stream)
    redis_client.set(presence_key("a"), "elsewhere", px=TTL_MS)
    theirs = 99_999_999_999_999  # the other holder's claim, as it indexed it
    redis_client.zadd(EXPIRIES, {"a": theirs})
    assert presence.refresh([stream]) == [stream]
    assert redis_client.zscore(EXPIRIES, "a") == theirs  # not renewed by us
    assert presence.connected_count() == 1


def test_opened_and_closed_go_on_during_an_outage(
    offline: RedisPresence, replaced: Replaced
) -> None:
    stream = FakeStream("a", "t1")
    offline.opened(stream)
    offline.closed(stream)
    assert replaced == []
    assert not stream.ended


def test_reads_raise_store_unavailable_during_an_outage(offline: RedisPresence) -> None:
    with pytest.raises(StoreUnavailable):
        offline.is_connected("a")
    with pytest.raises(StoreUnavailable):
        offline.connected(["a"])
    with pytest.raises(StoreUnavailable):
        offline.connected_count()


def test_refresh_raises_an_outage_error_for_the_bus_to_handle(offline: RedisPresence) -> None:
    with pytest.raises(OUTAGE_ERRORS):
        offline.refresh([FakeStream("a", "t1")])

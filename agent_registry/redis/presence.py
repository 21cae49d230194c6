"""Presence in Redis: which agents have a stream open in any process.

Each open stream owns ``ar:presence:{agent}`` = its token, with a TTL of three keepalive
intervals that the owning worker refreshes. A worker killed with SIGKILL stops
refreshing, so its agents read ``connected: false`` once the TTL runs out.

Counting the keys would be a scan, so every claim is also in ``ar:presence-expiries``, a
sorted set of agent ids scored by the claim's expiry (Redis's own clock, in ms, so workers
on hosts with skewed clocks agree), written by the same scripts that set, renew and
release a claim. The number of connected agents is the members scored in the future
(``ZCOUNT``); members of lapsed claims are ignored, and pruned at each refresh.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

import redis

from ..core.ports import OpenStream
from .client import OUTAGE_ERRORS, ReportsOutages, outage_as_unavailable

log = logging.getLogger(__name__)

P = "ar:presence:"
# Not under ``ar:presence:``, so no agent id can name it.
EXPIRIES = "ar:presence-expiries"

# Redis's clock in ms; scripts are replicated by effects (Redis >= 5), so TIME is allowed.
_NOW_MS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# KEYS: presence key, expiries. ARGV: token, ttl ms, agent id. Answers the previous token.
_CLAIM = (
    _NOW_MS
    + """
local previous = redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'GET')
redis.call('ZADD', KEYS[2], string.format('%d', now_ms() + tonumber(ARGV[2])), ARGV[3])
return previous
"""
)

# KEYS: presence key, expiries. ARGV: token, agent id. Delete only our own claim: a newer
# stream elsewhere stays.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: expiries, then each claim's presence key. ARGV: ttl ms, then token, agent id per
# claim. Renew each claim of ours (or re-take it after an outage let it lapse); answers 1 per
# claim renewed, 0 where another stream holds it: ours was replaced.
_RENEW = (
    _NOW_MS
    + """
local ttl = tonumber(ARGV[1])
local expiry = string.format('%d', now_ms() + ttl)
local renewed = {}
for i = 2, #KEYS do
  local token, agent = ARGV[2 * i - 2], ARGV[2 * i - 1]
  local holder = redis.call('GET', KEYS[i])
  if holder and holder ~= token then
    renewed[i - 1] = 0
  else
    redis.call('SET', KEYS[i], token, 'PX', ttl)
    redis.call('ZADD', KEYS[1], expiry, agent)
    renewed[i - 1] = 1
  end
end
return renewed
"""
)

# Claims renewed per script call: one call, not one per stream, and Redis is never held
# for long (a few ms) by one.
_RENEW_BATCH = 500

# KEYS: expiries. Forget the claims that lapsed (a worker that died, a release missed).
_PRUNE = (
    _NOW_MS
    + """
return redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now_ms()))
"""
)

# KEYS: expiries. How many claims have not lapsed.
_COUNT = (
    _NOW_MS
    + """
return redis.call('ZCOUNT', KEYS[1], '(' .. string.format('%d', now_ms()), '+inf')
"""
)


def presence_key(agent_id: str) -> str:
    return P + agent_id


class RedisPresence(ReportsOutages):
    """The ``SharedPresence``: told by the hub when streams open and close, read by the API."""

    def __init__(
        self,
        client: redis.Redis,
        ttl_seconds: float,
        on_replaced: Callable[[str, str], None],
    ) -> None:
        self._redis = client
        self._ttl_ms = max(1, int(ttl_seconds * 1000))
        self._on_replaced = on_replaced
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)
        self._prune = client.register_script(_PRUNE)
        self._count = client.register_script(_COUNT)

    def opened(self, stream: OpenStream) -> None:
        try:
            previous = self._claim(
                keys=[presence_key(stream.agent_id), EXPIRIES],
                args=[stream.token, self._ttl_ms, stream.agent_id],
            )
        except OUTAGE_ERRORS as exc:
            # The outage is logged once, by the runtime's StoreOutage; this only counts it.
            self._store_failed("presence: record an opened stream", exc)
            log.debug(
                "agent %s: presence not recorded (store unavailable); retried at the next refresh",
                stream.agent_id,
                extra={"agent_id": stream.agent_id},
            )
            return
        self._store_answered()
        if isinstance(previous, str) and previous != stream.token:
            self._on_replaced(stream.agent_id, previous)

    def closed(self, stream: OpenStream) -> None:
        try:
            self._release(
                keys=[presence_key(stream.agent_id), EXPIRIES],
                args=[stream.token, stream.agent_id],
            )
        except OUTAGE_ERRORS as exc:
            self._store_failed("presence: release a closed stream", exc)
            log.debug(
                "agent %s: presence not released (store unavailable); it lapses by itself",
                stream.agent_id,
                extra={"agent_id": stream.agent_id},
            )
            return
        self._store_answered()

    def refresh(self, streams: Sequence[OpenStream]) -> list[OpenStream]:
        """Renew every local claim; returns the streams another process has replaced.

        Also prunes the lapsed claims from the expiry index (every worker holding a stream
        does, each keepalive interval), so it stays the size of the connected fleet.
        """
        if not streams:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for start in range(0, len(streams), _RENEW_BATCH):
            batch = streams[start : start + _RENEW_BATCH]
            self._renew(
                keys=[EXPIRIES, *(presence_key(stream.agent_id) for stream in batch)],
                args=[self._ttl_ms, *(x for s in batch for x in (s.token, s.agent_id))],
                client=pipe,
            )
        self._prune(keys=[EXPIRIES], client=pipe)
        renewed = [kept for batch in pipe.execute()[:-1] for kept in batch]
        return [sub for sub, kept in zip(streams, renewed, strict=True) if not kept]

    @outage_as_unavailable
    def is_connected(self, agent_id: str) -> bool:
        return bool(self._redis.exists(presence_key(agent_id)))

    @outage_as_unavailable
    def connected(self, agent_ids: Iterable[str]) -> set[str]:
        agent_ids = list(agent_ids)
        if not agent_ids:
            return set()
        holders = self._redis.mget([presence_key(agent_id) for agent_id in agent_ids])
        return {agent_id for agent_id, holder in zip(agent_ids, holders, strict=True) if holder}

    @outage_as_unavailable
    def connected_count(self) -> int:
        return int(self._count(keys=[EXPIRIES]))

"""Presence in Redis: which agents have a stream open in any process.

Each open stream owns ``ar:presence:{agent}`` = its token, with a TTL of three keepalive
intervals that the owning worker refreshes. A worker killed with SIGKILL stops
refreshing, so its agents read ``connected: false`` once the TTL runs out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

import redis

from ..core.ports import OpenStream
from .client import OUTAGE_ERRORS, ReportsOutages, outage_as_unavailable

log = logging.getLogger(__name__)

P = "ar:presence:"

# KEYS: presence key. ARGV: token. Delete only our own claim: a newer stream elsewhere stays.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: presence key. ARGV: token, ttl ms. Renew our claim (or re-take it after an outage
# let it lapse); answer 0 when another stream holds it: ours was replaced.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


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
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)

    def opened(self, stream: OpenStream) -> None:
        try:
            previous = self._redis.set(
                presence_key(stream.agent_id),
                stream.token,
                px=self._ttl_ms,
                get=True,
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
            self._release(keys=[presence_key(stream.agent_id)], args=[stream.token])
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
        """Renew every local claim; returns the streams another process has replaced."""
        if not streams:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for stream in streams:
            self._renew(
                keys=[presence_key(stream.agent_id)],
                args=[stream.token, self._ttl_ms],
                client=pipe,
            )
        renewed = pipe.execute()
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

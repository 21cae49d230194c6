"""Does Redis answer? The readiness check's PING, bounded so that it never hangs a worker.

It has a connection pool of its own. The shared pool's calls wait up to 2 s for a reply
from a paused Redis (4 s at worst, client.py): during an outage all 64 connections may be
stuck that way, and a probe queued behind them would answer long after a load balancer
gave up on it. Here every step is short (a free connection, connecting, the reply: 0.5 s
each) and nothing is retried, so a PING to a paused Redis answers in about 0.5 s (one
reply timeout; measured 0.50-0.57 s with 12 probes at once), 1.5 s at worst, and at once
when Redis refuses connections.
"""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# A few probes at a time are plenty (load balancers probe every few seconds); a probe that
# cannot get one of these within the timeout finds Redis too slow anyway.
_PROBE_CONNECTIONS = 4


class RedisProbe:
    def __init__(self, url: str, timeout: float = 0.5) -> None:
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=_PROBE_CONNECTIONS,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        self._redis = redis.Redis(connection_pool=pool)

    def answers(self) -> bool:
        """True when Redis answers PING now; False on any failure (never raises)."""
        try:
            return bool(self._redis.ping())
        except redis.RedisError:
            return False

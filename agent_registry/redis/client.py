"""Connecting to Redis, turning an unreachable Redis into ``StoreUnavailable`` (503), and
reporting failures and successes to the runtime's ``StoreOutage`` (which does the logging)."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from typing import Any, TypeVar, cast

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.typing import ZSetRangeResponse

from ..errors import StoreUnavailable
from ..outage import StoreOutage

T = TypeVar("T")

# Failures that mean "the store cannot be reached right now", not "the request is wrong".
OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ReadOnlyError,
)

UNAVAILABLE_MESSAGE = "The shared store (Redis) is unavailable; retry shortly."


# Every wait of a Redis call is bounded by one of these, and a timeout is never retried, so
# a call against a paused Redis ends within REPLY_TIMEOUT (2 s) when it has a connection,
# and within POOL_TIMEOUT + CONNECT_TIMEOUT + REPLY_TIMEOUT (4 s) at worst.
POOL_TIMEOUT = 1.0  # for a free connection of the pool, when all of them are in use
CONNECT_TIMEOUT = 1.0  # for the TCP connection (longer only if Redis's listen queue is full)
REPLY_TIMEOUT = 2.0  # for each reply, the connection handshake's included
WORST_CALL_SECONDS = POOL_TIMEOUT + CONNECT_TIMEOUT + REPLY_TIMEOUT


def connect(url: str, max_connections: int = 64) -> redis.Redis:
    """A client sized and timed explicitly (redis-py's defaults changed across versions).

    One quick retry covers a dropped idle connection (a ``ConnectionError``). Timeouts are
    not retried: redis-py retries the connection handshake inside a retried command, so
    with timeouts retried a call that had to open a connection to a paused Redis waited
    four reply timeouts (8.2 s), not one.
    """
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=POOL_TIMEOUT,
        socket_timeout=REPLY_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_keepalive=True,
        health_check_interval=15,
        decode_responses=True,
        retry=Retry(
            ExponentialBackoff(cap=0.2, base=0.02),
            1,
            supported_errors=(redis.exceptions.ConnectionError,),
        ),
    )
    return redis.Redis(connection_pool=pool)


class ReportsOutages:
    """Mixin for what talks to Redis: where it reports failures and successes.

    The runtime sets ``outage``; objects built bare (tests) have none and report nothing.
    """

    outage: StoreOutage | None = None

    def _store_failed(self, operation: str, error: BaseException) -> None:
        if self.outage is not None:
            self.outage.failed(operation, error)

    def _store_answered(self) -> None:
        if self.outage is not None:
            self.outage.succeeded()


def outage_as_unavailable(method: Callable[..., T]) -> Callable[..., T]:
    """A method of a ``ReportsOutages``: an outage becomes ``StoreUnavailable``, reported."""
    operation = method.__qualname__

    @functools.wraps(method)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> T:
        outage: StoreOutage | None = getattr(self, "outage", None)
        try:
            result = method(self, *args, **kwargs)
        except OUTAGE_ERRORS as exc:
            if outage is not None:
                outage.failed(operation, exc)
            raise StoreUnavailable(UNAVAILABLE_MESSAGE) from exc
        if outage is not None and outage.down:
            outage.succeeded()
        return result

    return guarded


def guard_public_methods(cls: type[T]) -> type[T]:
    """Class decorator: every public method maps a Redis outage to ``StoreUnavailable``.

    Generator methods are left alone: calling one reads nothing (a guard there would report
    a success that did not happen), so they guard the reads each step makes themselves.
    """
    for name, value in list(vars(cls).items()):
        if callable(value) and not name.startswith("_") and not inspect.isgeneratorfunction(value):
            setattr(cls, name, outage_as_unavailable(value))
    return cls


def num(value: float) -> str:
    """A float as Redis stores it: ``repr`` round-trips exactly, so CAS can compare text."""
    return repr(float(value))


# Compact JSON text, from one encoder: ``json.dumps(separators=...)`` builds a new one per
# call, which the per-ack and per-heartbeat batches would pay each time. Every compact
# JSON text the Redis store writes comes from here.
compact_json = json.JSONEncoder(separators=(",", ":")).encode


# connect() sets decode_responses=True, so every reply is text. redis-py's annotations
# cannot follow that setting and say ``bytes | str``; these say what the reply is.


def texts(reply: list[bytes | str] | ZSetRangeResponse) -> list[str]:
    """Members of a list or sorted-set range read without scores."""
    return cast("list[str]", reply)


def text_set(reply: set[bytes | str]) -> set[str]:
    return cast("set[str]", reply)


def text_hash(reply: dict[bytes | str, bytes | str]) -> dict[str, str]:
    return cast("dict[str, str]", reply)

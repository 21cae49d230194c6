"""Group commit: the same small write from many greenlets, sent to Redis as one call.

A heartbeat is one tiny Lua script. With hundreds arriving per second, what each costs
is mostly the round trip and redis-py's per-call work, on both sides, not the script.
Here each caller adds its item and waits, and one flusher greenlet at a time sends all
that is waiting as one batch, then hands each caller its own answer.

A batch goes out when the worker has nothing else ready to run (a libev idle watcher), or
``MAX_WAIT`` after the flusher began to wait, whichever comes first; while one batch is on
the wire, the items that arrive wait for the next. An idle worker sends at once, so under
light load a batch is a single item and waits no longer than it would have. A busy one
first parses every request it has ready: sending as soon as the loop came round (as it
did before) sent small batches from a saturated worker, whose requests take longer to
handle than a round trip lasts (docs/performance.md, "Send when idle"). The
bound keeps a worker that never runs out of work from holding a batch: the batch goes out
at the first turn of the loop after ``MAX_WAIT``, which a turn that runs many callbacks
(each request a few hundred microseconds) can take some milliseconds to reach.

A caller returns only once Redis has executed its batch, so an answer sent after ``call``
returns (a heartbeat's ``204``) is never lost when the worker dies right after.

When a batch fails, the items that arrived while it was on the wire fail with it, unsent:
they would have met the same unreachable store, after waiting for the failure (a paused
Redis takes the whole reply timeout to fail), so a caller waits at most one timeout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar, cast

import gevent
import redis
from gevent.event import AsyncResult
from gevent.hub import Waiter

I = TypeVar("I")  # noqa: E741 - an item, as in Generic[I, R]
R = TypeVar("R")

MAX_BATCH = 256
MAX_WAIT = 0.002  # seconds


class GroupCommit(Generic[I, R]):
    """``call(item)`` answers what ``send`` answered for that item, sent with others.

    ``send`` takes the items of one batch, in arrival order, and returns one answer per
    item in the same order; when it raises, every caller of that batch gets the error.
    """

    def __init__(self, send: Callable[[list[I]], Sequence[R]], max_batch: int = MAX_BATCH):
        self._send = send
        self._max_batch = max_batch
        self._waiting: list[tuple[I, AsyncResult[R]]] = []
        self._flusher: gevent.Greenlet[[], None] | None = None
        self.batches = 0  # how many sends so far (read by tests)

    def call(self, item: I) -> R:
        answer: AsyncResult[R] = AsyncResult()
        self._waiting.append((item, answer))
        if self._flusher is None:
            self._flusher = gevent.spawn(self._flush)
        return cast("R", answer.get())  # set() is only ever given an R

    def _flush(self) -> None:
        batch: list[tuple[I, AsyncResult[R]]] = []
        try:
            while self._waiting:
                if len(self._waiting) < self._max_batch:
                    self._until_idle()
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                self.batches += 1
                answers = self._send([item for item, _ in batch])
                for (_, answer), value in zip(batch, answers, strict=True):
                    answer.set(value)
                batch = []
        except BaseException as exc:
            # The batch failed, and so do the items waiting behind it (see above). A
            # flusher killed (a worker stopping) fails them too: nobody waits forever.
            error = _as_error(exc)
            for _, answer in batch + self._waiting:
                answer.set_exception(error)
            self._waiting.clear()
            if not isinstance(exc, Exception):
                raise
        finally:
            self._flusher = None

    def _until_idle(self) -> None:
        """Return once the loop has no other watcher pending, or after ``MAX_WAIT``."""
        loop = gevent.get_hub().loop
        waiter: Waiter[None] = Waiter()
        idle, timer = loop.idle(), loop.timer(MAX_WAIT)
        idle.start(waiter.switch, None)
        # From the loop's time now: a flusher resumed by its socket's watcher would count
        # from the start of a turn that may have run longer than MAX_WAIT already.
        timer.start(waiter.switch, None, update=True)
        try:
            waiter.get()
        finally:
            idle.close()
            timer.close()


def _as_error(exc: BaseException) -> Exception:
    """What a caller gets when its batch failed. A flusher that was killed (GreenletExit)
    becomes a connection error, which callers answer as the store being unavailable: a
    GreenletExit raised in a request's greenlet would end it without an answer."""
    if isinstance(exc, Exception):
        return exc
    return redis.ConnectionError(f"the batch was not sent: the sender stopped ({exc!r})")


def group_commit_if(
    enabled: bool, send: Callable[[list[I]], Sequence[R]]
) -> GroupCommit[I, R] | None:
    """A group commit over ``send``, or None where requests are not greenlets."""
    return GroupCommit(send) if enabled else None


class HeldConnection:
    """A client on one connection of ``client``'s pool, held for good, for the flusher of
    one group commit (which has one batch on the wire at a time).

    Checking a connection out of the pool is dear under gevent: redis-py first polls it
    for unread data, with a gevent ``poll`` each time. Measured here, a ``PING`` through
    the pool took about 100 us of CPU and one on a held connection 60 us; for a heartbeat
    or an ack that is most of what the batch costs per item (docs/performance.md).

    The connection is taken at the first batch, so that a server started while Redis is
    down still starts. It keeps the pool's timeouts, retry and health check. A held
    connection skips the pool's check for unread data, which is safe because redis-py
    drops the connection whenever a send or a read is interrupted (a timeout, a connection
    error, a killed greenlet), so no reply is left unread for the next batch; the next call
    connects again. An error reply (a failed script) was read whole and keeps it.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._client: redis.Redis | None = None

    def __call__(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis(connection_pool=self._pool, single_connection_client=True)
        return self._client


def held_connection_if(enabled: bool, client: redis.Redis) -> Callable[[], redis.Redis]:
    """What a group commit's batches are sent on: a held connection, or (no group commit:
    callers are threads, or tests) the shared client, whose pool serves them at once."""
    if enabled:
        return HeldConnection(client)
    return lambda: client


def send_one(
    batches: GroupCommit[I, R] | None, send: Callable[[list[I]], Sequence[R]], item: I
) -> R:
    """``item``'s answer: through ``batches``, or sent on its own when there are none."""
    if batches is None:
        (answer,) = send([item])
        return answer
    return batches.call(item)

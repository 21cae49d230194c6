"""A bounded queue for one event stream: any number of producers, one reader greenlet.

gevent's ``Queue`` costs about 2.7 KB per instance (three deques and bookkeeping for any
number of readers and writers); with tens of thousands of idle streams that was most of
what the app added per stream. One stream has exactly one reader, so a list and at most
one parked ``Waiter`` are enough (a few hundred bytes).
"""

from __future__ import annotations

from typing import Any

from gevent.hub import Waiter, get_hub
from gevent.queue import Empty, Full

__all__ = ["Empty", "Full", "StreamQueue"]

_TIMED_OUT = object()


class StreamQueue:
    __slots__ = ("_items", "_waiter", "maxsize")

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: list[Any] = []
        self._waiter: Waiter[object] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Any) -> None:
        """Append, or raise ``Full``; wakes the reader if it is waiting."""
        if len(self._items) >= self.maxsize:
            raise Full
        self._items.append(item)
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            # A Waiter is switched from the hub: schedule it, as gevent's own queues do.
            get_hub().loop.run_callback(waiter.switch, None)

    def get_nowait(self) -> Any:
        if not self._items:
            raise Empty
        return self._items.pop(0)

    def get(self, timeout: float) -> Any:
        """The next item, waiting at most ``timeout`` seconds; ``Empty`` when none came."""
        if self._items:
            return self._items.pop(0)
        waiter: Waiter[object] = Waiter()
        self._waiter = waiter
        timer = get_hub().loop.timer(timeout)
        timer.start(waiter.switch, _TIMED_OUT)
        try:
            waiter.get()
        finally:
            timer.close()
            self._waiter = None
        if not self._items:
            raise Empty
        return self._items.pop(0)

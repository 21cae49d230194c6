"""An ordered index of deadlines, so a sweep costs O(due) and not O(everything)."""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

_COMPACT_SLACK = 1024


class DeadlineIndex(Generic[K]):
    """A min-heap of ``(deadline, key)`` with lazy deletion.

    Moving a key's deadline (a heartbeat) pushes a new entry and leaves the old one in
    the heap; entries that no longer match ``_current`` are dropped when they surface.
    The heap is rebuilt when stale entries outnumber live ones, so memory stays
    proportional to the number of keys.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, K]] = []
        self._current: dict[K, float] = {}

    def __len__(self) -> int:
        return len(self._current)

    def set(self, key: K, deadline: float) -> None:
        self._current[key] = deadline
        heapq.heappush(self._heap, (deadline, key))
        if len(self._heap) > 2 * len(self._current) + _COMPACT_SLACK:
            self._heap = [(when, k) for k, when in self._current.items()]
            heapq.heapify(self._heap)

    def get(self, key: K) -> float | None:
        return self._current.get(key)

    def discard(self, key: K) -> None:
        self._current.pop(key, None)

    def due(self, now: float, limit: int) -> list[tuple[K, float]]:
        """Keys whose deadline is at or before ``now``, earliest first; they stay indexed."""
        heap, current = self._heap, self._current
        found: list[tuple[float, K]] = []
        seen: set[K] = set()
        while heap and heap[0][0] <= now and len(found) < limit:
            deadline, key = heapq.heappop(heap)
            if current.get(key) == deadline and key not in seen:
                seen.add(key)
                found.append((deadline, key))
        for entry in found:
            heapq.heappush(heap, entry)
        return [(key, deadline) for deadline, key in found]

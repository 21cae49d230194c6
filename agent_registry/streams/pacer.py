"""At most one event per key per interval, the latest state winning (the operator stream's
``fleet`` and ``command`` events: at most 4 a second each, API.md).

Pure bookkeeping over times the caller passes in (a monotonic clock in the server, plain
numbers in tests). A key that changes is marked; ``take`` hands out the marked keys that
may be sent now, and the caller then reads and sends their *current* state, so a burst of
changes becomes a few events and the last one is never lost: a key marked while it has to
wait stays marked until its turn.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Pacer(Generic[K]):
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._marked: set[K] = set()
        # When each key was last taken; forgotten once the interval has passed.
        self._sent_at: dict[K, float] = {}

    def __len__(self) -> int:
        return len(self._marked)

    def mark(self, key: K) -> bool:
        """The key's state changed: send it at its next turn. Whether it was not marked
        yet (a key already marked changes nothing in ``wait``)."""
        if key in self._marked:
            return False
        self._marked.add(key)
        return True

    def take(self, now: float) -> list[K]:
        """The marked keys whose last send is at least ``interval`` before ``now``; each is
        unmarked and counted as sent at ``now``."""
        self._forget(now)
        ready = [key for key in self._marked if key not in self._sent_at]
        for key in ready:
            self._marked.discard(key)
            self._sent_at[key] = now
        return ready

    def wait(self, now: float) -> float | None:
        """Seconds until the next marked key may be taken (0: now); None when none is marked."""
        if not self._marked:
            return None
        turns = [self._sent_at.get(key, now - self.interval) for key in self._marked]
        return max(0.0, min(turns) + self.interval - now)

    def clear(self) -> None:
        """Forget every mark (nobody is listening any more); the pace of what was sent
        stays, so a listener that comes right back still gets at most one per interval."""
        self._marked.clear()

    def _forget(self, now: float) -> None:
        if self._sent_at:
            self._sent_at = {
                key: at for key, at in self._sent_at.items() if now - at < self.interval
            }

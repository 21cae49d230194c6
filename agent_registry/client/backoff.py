"""Exponential backoff with jitter, for reconnecting and re-registering.

The n-th consecutive failure waits ``min(cap, base * 2**n)`` scaled by a random factor in
``[1 - jitter, 1]``: a fleet that lost its server at the same moment comes back spread
out instead of all at once. The server's SSE ``retry:`` field sets ``base``.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    def __init__(
        self,
        base: float = 1.0,
        cap: float = 60.0,
        factor: float = 2.0,
        jitter: float = 0.5,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if base <= 0 or cap <= 0 or factor < 1 or not 0 <= jitter <= 1:
            raise ValueError("backoff needs base > 0, cap > 0, factor >= 1, 0 <= jitter <= 1")
        self.base, self.cap, self.factor, self.jitter = base, cap, factor, jitter
        self.failures = 0
        self._rand = rand

    def next_delay(self) -> float:
        """The wait before the next attempt; each call counts one more failure."""
        ceiling = min(self.cap, self.base * self.factor ** min(self.failures, 32))
        self.failures += 1
        return ceiling * (1 - self.jitter * self._rand())

    def reset(self) -> None:
        """After a success: the next failure waits about ``base`` again."""
        self.failures = 0

    def honour_retry(self, retry_ms: int | None) -> None:
        """Take the server's ``retry:`` (milliseconds) as the base delay."""
        if retry_ms is not None and retry_ms > 0:
            self.base = retry_ms / 1000

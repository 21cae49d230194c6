"""A clock that moves only when told to, for the core, the app and the sweep benchmark."""

from __future__ import annotations

T0 = 1_773_224_130.0  # 2026-03-11T10:15:30.000Z


class FakeClock:
    """Epoch seconds that change only through ``advance`` or by setting ``now``."""

    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now

"""Polling with a bound: the only way tests wait for another process."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], within: float, step: float = 0.02) -> T:
    """Call ``check`` until it returns something truthy or ``within`` seconds passed;
    return its last value (falsy on timeout), so callers ``assert wait_until(...)``."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def holds_for(check: Callable[[], object], seconds: float, step: float = 0.05) -> bool:
    """True if ``check`` stays truthy for ``seconds`` (for "this did not happen" tests);
    returns False as soon as it does not."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not check():
            return False
        time.sleep(step)
    return bool(check())

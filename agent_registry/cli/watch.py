"""Following a command until every target is final (or a deadline passes), by polling.

The server has no progress stream for operators; a command's deliveries are read with
``GET /api/v1/commands/{id}`` a few times a second. A brief outage while waiting is
ridden out (up to ``outage_grace`` seconds); a longer one raises ``ServerUnreachable``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..client.api import RegistryApi, ServerUnreachable

FINAL_STATUSES = frozenset({"ACKNOWLEDGED", "FAILED", "EXPIRED", "CANCELLED"})


def settled(command: dict[str, Any]) -> bool:
    """True when every delivery is final: ``ACKNOWLEDGED``, ``FAILED``, ``EXPIRED`` or
    ``CANCELLED``."""
    summary: dict[str, int] = command["summary"]
    return summary["pending"] == 0 and summary["delivered"] == 0


def wait_for_command(
    api: RegistryApi,
    command: dict[str, Any],
    *,
    timeout: float | None,
    on_progress: Callable[[dict[str, Any], float], None] = lambda command, elapsed: None,
    interval: float = 0.25,
    outage_grace: float = 5.0,
) -> tuple[dict[str, Any], bool]:
    """Poll until settled or ``timeout`` seconds passed: ``(latest command, settled)``."""
    start = time.monotonic()
    unreachable_since: float | None = None
    while True:
        elapsed = time.monotonic() - start
        on_progress(command, elapsed)
        if settled(command):
            return command, True
        if timeout is not None and elapsed >= timeout:
            return command, False
        pause = interval if timeout is None else min(interval, max(0.0, timeout - elapsed))
        time.sleep(pause)
        try:
            command = api.command(command["commandId"])
            unreachable_since = None
        except ServerUnreachable:
            now = time.monotonic()
            unreachable_since = unreachable_since or now
            if now - unreachable_since >= outage_grace:
                raise

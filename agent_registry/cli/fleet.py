"""What the fleet clean-up commands need beyond one HTTP call: durations such as ``7d``, and
the list a ``prune --dry-run`` shows."""

from __future__ import annotations

import email.utils
import re
import time
from datetime import datetime
from typing import Any

from ..client.api import RegistryApi

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")
DURATION_HELP = "a number of seconds, or with units: 90s, 15m, 12h, 7d, 2w, 1d12h"


def parse_duration(text: str) -> float:
    """``7d`` -> 604800.0; ``1d12h`` -> 129600.0; ``90`` -> 90.0. ValueError otherwise."""
    compact = text.strip().lower().replace(" ", "")
    if not compact:
        raise ValueError(f"'{text}' is not a duration ({DURATION_HELP}).")
    position, total = 0, 0.0
    parts = []
    for match in _PART.finditer(compact):
        if match.start() != position:
            break
        parts.append(match.group(2))
        total += float(match.group(1)) * _UNITS[match.group(2) or "s"]
        position = match.end()
    # A bare number is seconds when it stands alone; "7d3" is more likely a typo.
    if position != len(compact) or (len(parts) > 1 and not all(parts)):
        raise ValueError(f"'{text}' is not a duration ({DURATION_HELP}).")
    return total


def dead_for_at_least(
    api: RegistryApi, dead_for: float, page_size: int = 1000
) -> list[dict[str, Any]]:
    """The DEAD agents a prune with ``deadForSeconds=dead_for`` would delete now.

    "Now" is the server's clock: its ``Date`` header, to the second, refined by this
    machine's clock when that falls within the same second. The prune itself decides at
    its own moment, so an agent on the edge may differ.
    """
    params: dict[str, Any] = {"status": "DEAD", "limit": page_size}
    found: list[dict[str, Any]] = []
    now: float | None = None
    while True:
        response = api.request("GET", "/agents", params=params)
        if now is None:
            now = server_time(response.headers.get("Date"))
        page: list[dict[str, Any]] = response.json()
        found.extend(page)
        if len(page) < page_size:
            break
        params["after"] = page[-1]["id"]
    cutoff = now - dead_for
    return [agent for agent in found if epoch(agent["stateChangedAt"]) <= cutoff]


def server_time(date_header: str | None) -> float:
    """The server's time: its ``Date`` (whole seconds) narrowed by the local clock."""
    local = time.time()
    if date_header:
        try:
            second = email.utils.parsedate_to_datetime(date_header).timestamp()
        except (TypeError, ValueError):
            return local
        return min(max(local, second), second + 1)
    return local


def epoch(stamp: str) -> float:
    """``2026-03-11T10:15:30.123Z`` -> epoch seconds."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

"""A summary of what a server wrote to its log, for the benchmark report."""

from __future__ import annotations

import re

# INFO lines worth counting: streams the server ended, and why.
NOTABLE = (
    "client went away",
    "queue full",
    "replaces the open one",
    "Worker timeout",
    "Booting worker",
)
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Timeout)\b.*")
_IDS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_AGENTS = re.compile(r"bench-agent-\d+")
_NUMBERS = re.compile(r"\d+(\.\d+)?")
_LEVELS = ("ERROR", "WARNING", "CRITICAL")


def _normalise(message: str) -> str:
    """One key per kind of log line: ids, agent names and numbers blanked out."""
    return _NUMBERS.sub("N", _AGENTS.sub("<agent>", _IDS.sub("<id>", message)))


def summarise(text: str, top: int = 6) -> dict[str, object]:
    """Volume, errors, warnings, exceptions and the most frequent kinds of line."""
    counts: dict[str, int] = {}
    levels = dict.fromkeys(_LEVELS, 0)
    notable = dict.fromkeys(NOTABLE, 0)
    exceptions = ignored = 0
    unraisable = False  # inside an "Exception ignored in ..." report (teardown noise)
    for line in text.splitlines():
        if line.startswith("Exception ignored in"):
            unraisable = True
            continue
        for pattern in NOTABLE:
            if pattern in line:
                notable[pattern] += 1
        level = next((name for name in levels if f"[{name}]" in line), None)
        if level is not None:
            levels[level] += 1
            message = line[line.index(f"[{level}]") :]
        elif _EXCEPTION_LINE.match(line):
            if unraisable:
                ignored += 1
                unraisable = False
                continue
            exceptions += 1
            message = line
        else:
            continue
        key = _normalise(message)[:200]
        counts[key] = counts.get(key, 0) + 1
    return {
        "bytes": len(text.encode()),
        "lines": text.count("\n"),
        "errors": levels["ERROR"] + levels["CRITICAL"],
        "warnings": levels["WARNING"],
        "exceptions": exceptions,
        "ignored_unraisable": ignored,
        "notable": {pattern: count for pattern, count in notable.items() if count},
        "top": sorted(counts.items(), key=lambda item: -item[1])[:top],
    }

"""Text for people, as the ops CLI prints it: tables, key/value blocks, a progress line."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

AGENT_COLUMNS = (
    ("ID", "id"),
    ("GROUP", "group"),
    ("STATE", "state"),
    ("CONNECTED", "connected"),
    ("VERSION", "version"),
    ("LAST HEARTBEAT", "lastHeartbeatAt"),
)
PROBLEM_STATUSES = frozenset({"PENDING", "DELIVERED", "FAILED", "EXPIRED", "CANCELLED"})
DEAD_COLUMNS = (
    ("ID", "id"),
    ("GROUP", "group"),
    ("DEAD SINCE", "stateChangedAt"),
    ("LAST HEARTBEAT", "lastHeartbeatAt"),
)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Left-aligned columns, two spaces apart, sized to their widest cell."""
    text_rows = [list(headers), *([cell(value) for value in row] for row in rows)]
    widths = [max(len(row[i]) for row in text_rows) for i in range(len(headers))]
    return "\n".join(
        "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        for row in text_rows
    )


def agent_table(agents: Sequence[Mapping[str, Any]]) -> str:
    return table(
        [title for title, _ in AGENT_COLUMNS],
        ([agent.get(key) for _, key in AGENT_COLUMNS] for agent in agents),
    )


def dead_table(agents: Sequence[Mapping[str, Any]]) -> str:
    """DEAD agents with when they went DEAD (what a prune goes by)."""
    return table(
        [title for title, _ in DEAD_COLUMNS],
        ([agent.get(key) for _, key in DEAD_COLUMNS] for agent in agents),
    )


def key_values(record: Mapping[str, Any]) -> str:
    width = max(map(len, record), default=0)
    return "\n".join(f"{key + ':':<{width + 1}}  {cell(value)}" for key, value in record.items())


def summary_line(summary: Mapping[str, int]) -> str:
    return (
        f"{summary['targets']} target(s): {summary['pending']} pending, "
        f"{summary['delivered']} delivered, {summary['acknowledged']} acknowledged, "
        f"{summary['failed']} failed, {summary['expired']} expired"
        + (f", {summary['cancelled']} cancelled" if summary.get("cancelled") else "")
    )


def rollout_line(command: Mapping[str, Any]) -> str | None:
    """How far a rollout got: ``6/12 sent, 3 in flight, 3 final (window 3, ...)``."""
    rollout = command.get("rollout")
    if not rollout:
        return None
    summary = command["summary"]
    final = summary["targets"] - summary["pending"] - summary["delivered"]
    limit = rollout["maxFailures"]
    return (
        f"{rollout['sent']}/{summary['targets']} sent, {rollout['inFlight']} in "
        f"flight, {final} final (window {rollout['batchSize']}, {rollout['failures']} "
        f"failure(s){'' if limit is None else f' of at most {limit}'})"
    )


def command_lines(command: Mapping[str, Any], only_problems: bool = False) -> str:
    """The command, its summary, and a table of deliveries (only unhappy ones if asked)."""
    target = command["target"]
    fields = {
        "commandId": command["commandId"],
        "type": command["type"],
        "target": target["kind"] + (f" {target['value']}" if target["value"] else ""),
        "payload": command["payload"],
        "createdAt": command["createdAt"],
        "expiresAt": command["expiresAt"],
        "state": command.get("state"),
        "summary": summary_line(command["summary"]),
    }
    progress = rollout_line(command)
    if progress is not None:
        fields["rollout"] = progress
    head = key_values(fields)
    deliveries = [
        d for d in command["deliveries"] if not only_problems or d["status"] in PROBLEM_STATUSES
    ]
    if not deliveries:
        return head
    rows = (
        [
            d["agentId"],
            d["status"],
            d["deliveredAt"],
            d["acknowledgedAt"],
            (d["result"] or {}).get("message"),
        ]
        for d in deliveries
    )
    return head + "\n\n" + table(["AGENT", "STATUS", "DELIVERED", "ACKNOWLEDGED", "MESSAGE"], rows)


class ProgressLine:
    """A live progress display: one line rewritten in place on a terminal; elsewhere
    (logs, pipes) a line when the counts change, at most every ``every`` seconds."""

    def __init__(self, stream: TextIO, every: float = 1.0) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.every = every
        self._last_text = ""
        self._last_at = float("-inf")
        self._width = 0

    def __call__(self, command: Mapping[str, Any], elapsed: float) -> None:
        progress = rollout_line(command)
        summary = summary_line(command["summary"])
        text = summary if progress is None else f"rollout {progress}; {summary}"
        if self.tty:
            line = f"[{elapsed:5.1f}s] {text}"
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
            self.stream.flush()
            return
        now = time.monotonic()
        if text != self._last_text and now - self._last_at >= self.every:
            self.stream.write(f"[{elapsed:.1f}s] {text}\n")
            self.stream.flush()
            self._last_text, self._last_at = text, now

    def finish(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()

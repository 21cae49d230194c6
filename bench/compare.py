"""Redis against memory over several runs of ``make bench``: each run's figures and the
medians, since on a shared 2-core machine one run's ratio moves more than most changes do.

    python -m bench.compare RESULTS_DIR_OR_JSON...

Each argument is a ``latest.json`` or a directory holding one (``--out`` of a run). A run
counts for what it measured: a fan-out size both b and e ran, and heartbeats (c and e).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .figures import get
from .targets import same_operations

Row = dict[str, Any]


class NotAResult(Exception):
    """An argument that is not a readable ``latest.json``."""


def load(paths: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    """(name, the run's raw figures) for each argument, in order."""
    runs = []
    for argument in paths:
        path = Path(argument)
        file = path / "latest.json" if path.is_dir() else path
        try:
            doc = json.loads(file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise NotAResult(f"{file}: not a make bench result ({exc})") from exc
        if not isinstance(doc, dict):
            raise NotAResult(f"{file}: not a make bench result (not a JSON object)")
        runs.append((str(argument), doc))
    return runs


# Where a fan-out's and a heartbeat run's Redis calls and connection spread are kept.
_FANOUT_KEYS = ("store_calls_per_event", "ack_connections_per_worker")
_HEARTBEAT_KEYS = ("store_calls_per_request", "connections_per_worker")


def run_rows(name: str, doc: dict[str, Any]) -> list[Row]:
    """One row per operation this run measured on both stores."""
    rows = []
    for pair in same_operations(doc.get("scenarios", {})):
        redis, memory = get(pair.redis, pair.cost_key), get(pair.memory, pair.cost_key)
        if redis is None or memory is None:
            continue
        fanout = pair.size is not None
        calls_key, spread_key = _FANOUT_KEYS if fanout else _HEARTBEAT_KEYS
        rows.append(
            {
                "run": name,
                "operation": f"fan-out event and its ack, N = {pair.size:,}"
                if fanout
                else "heartbeat",
                "memory": memory,
                "redis": redis,
                "calls": get(pair.redis, calls_key),
                "spread": get(pair.redis, spread_key),
            }
        )
    return rows


def summary(rows: Sequence[Row]) -> list[Row]:
    """Per operation: the medians of memory and Redis, and their ratio, over the runs."""
    out = []
    for operation in dict.fromkeys(row["operation"] for row in rows):
        mine = [row for row in rows if row["operation"] == operation]
        memory = statistics.median(row["memory"] for row in mine)
        redis = statistics.median(row["redis"] for row in mine)
        out.append(
            {
                "operation": operation,
                "runs": len(mine),
                "memory": memory,
                "redis": redis,
                "ratio": redis / memory,
                "ratios": [row["redis"] / row["memory"] for row in mine],
            }
        )
    return out


def render(rows: Sequence[Row], totals: Sequence[Row]) -> str:
    lines = [
        "| run | operation | memory 1 worker (µs) | Redis (µs) | ÷ | Redis calls per op | spread |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        spread = " / ".join(map(str, row["spread"])) if row["spread"] else "-"
        calls = "-" if row["calls"] is None else f"{row['calls']:.3f}"
        lines.append(
            f"| {row['run']} | {row['operation']} | {row['memory']:.1f} | {row['redis']:.1f} "
            f"| {row['redis'] / row['memory']:.2f} | {calls} | {spread} |"
        )
    lines += ["", "| operation | runs | median memory (µs) | median Redis (µs) | ÷ | ratios |"]
    lines.append("|---|---|---|---|---|---|")
    for total in totals:
        ratios = ", ".join(f"{r:.2f}" for r in total["ratios"])
        lines.append(
            f"| {total['operation']} | {total['runs']} | {total['memory']:.1f} "
            f"| {total['redis']:.1f} | {total['ratio']:.2f} | {ratios} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("runs", nargs="+", help="latest.json files, or directories with one")
    args = parser.parse_args(argv)
    try:
        runs = load(args.runs)
    except NotAResult as exc:
        parser.error(str(exc))
    rows = [row for name, doc in runs for row in run_rows(name, doc)]
    if not rows:
        parser.error("no run measured an operation on both stores (scenarios b or c, and e)")
    print(render(rows, summary(rows)))


if __name__ == "__main__":
    main()

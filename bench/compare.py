"""Redis against memory over several runs of ``make bench``: each run's figures and the
medians, since on a shared 2-core machine one run's ratio moves more than most changes do.

    python -m bench.compare RESULTS_DIR_OR_JSON...

Each argument is a ``latest.json`` or a directory holding one (``--out`` of a run). A run
counts for what it measured: a fan-out size both b and e ran, heartbeats (c and e), and
f's side-by-side blocks of both.
Where the runs carry the speed probe's figures (``speed_probe.py``), a run is *steady* when
both sides met about the same host speed, and the steady runs' median is given apart.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .figures import PAIRED_OPERATIONS, get
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


# Where a fan-out's and a heartbeat run's Redis calls, connection spread, CPU figures (with
# the speed probe's, bench/speed_probe.py) and the workers' own CPU per operation are kept.
_FANOUT_KEYS = (
    "store_calls_per_event",
    "ack_connections_per_worker",
    "total_cpu",
    "server_cpu_us_per_event",
)
_HEARTBEAT_KEYS = (
    "store_calls_per_request",
    "connections_per_worker",
    "cpu",
    "server_cpu_us_per_request",
)


# Runs whose two sides' speed probes differ by more than this met a host that changed
# speed between them; the median of the others is given apart.
STEADY = 1.2


def steady(row: Row) -> bool | None:
    """Whether both sides of a run met about the same host speed; None: a run from before
    the speed probe."""
    probes = (row["memory_probe"], row["redis_probe"])
    if None in probes:
        return None
    return bool(max(probes) <= STEADY * min(probes))


def run_rows(name: str, doc: dict[str, Any]) -> list[Row]:
    """One row per operation this run measured on both stores."""
    rows = []
    for pair in same_operations(doc.get("scenarios", {})):
        redis, memory = get(pair.redis, pair.cost_key), get(pair.memory, pair.cost_key)
        if redis is None or memory is None:
            continue
        fanout = pair.size is not None
        calls_key, spread_key, cpu_key, workers_key = _FANOUT_KEYS if fanout else _HEARTBEAT_KEYS
        rows.append(
            {
                "run": name,
                "operation": f"fan-out event and its ack, N = {pair.size:,}"
                if fanout
                else "heartbeat",
                "memory": memory,
                "redis": redis,
                "store": _store_share(redis, get(pair.redis, workers_key)),
                "ratio": redis / memory,
                "calls": get(pair.redis, calls_key),
                "spread": get(pair.redis, spread_key),
                "redis_probe": get(pair.redis, cpu_key, "probe", "mean_ms"),
                "memory_probe": get(pair.memory, cpu_key, "probe", "mean_ms"),
            }
        )
    f = doc.get("scenarios", {}).get("f") or {}
    for key, operation in PAIRED_OPERATIONS:
        figures = f.get(key) or {}
        redis = get(figures, "redis", "cpu_us_per_operation")
        memory = get(figures, "memory", "cpu_us_per_operation")
        if not figures.get("valid") or redis is None or memory is None:
            continue
        spread = f.get("redis_ack_connections_per_worker") if key == "fanout" else None
        rows.append(
            {
                "run": name,
                "operation": f"{operation}, side by side (f)",
                "memory": memory,
                "redis": redis,
                "store": _store_share(redis, get(figures, "redis", "workers_cpu_us_per_operation")),
                "ratio": redis / memory,
                "calls": get(figures, "redis", "store_calls_per_operation"),
                "spread": spread or get(figures, "redis", "connections_per_worker"),
                "redis_probe": _blocks_probe(figures["redis"]),
                "memory_probe": _blocks_probe(figures["memory"]),
            }
        )
    return rows


def _store_share(redis: float, workers: float | None) -> float | None:
    """What redis-server spent of a Redis operation's CPU (the rest is the workers'), or
    None from a run that did not count the workers apart."""
    return None if workers is None else redis - workers


def _blocks_probe(side: dict[str, Any]) -> float | None:
    """The median speed probe over a side's blocks of f, or None from a run without it:
    how fast the host was in the run (docs/performance.md, "A slower host")."""
    blocks = side.get("blocks", [])
    probes = [block["probe_ms"] for block in blocks if block.get("probe_ms") is not None]
    return statistics.median(probes) if probes else None


def summary(rows: Sequence[Row]) -> list[Row]:
    """Per operation: the medians of memory and Redis, and their ratio, over the runs."""
    out = []
    for operation in dict.fromkeys(row["operation"] for row in rows):
        mine = [row for row in rows if row["operation"] == operation]
        memory = statistics.median(row["memory"] for row in mine)
        redis = statistics.median(row["redis"] for row in mine)
        at_one_speed = [row["ratio"] for row in mine if steady(row)]
        out.append(
            {
                "operation": operation,
                "runs": len(mine),
                "memory": memory,
                "redis": redis,
                "ratio": redis / memory,
                "ratios": [row["ratio"] for row in mine],
                "steady_runs": len(at_one_speed),
                "steady_ratio": statistics.median(at_one_speed) if at_one_speed else None,
            }
        )
    return out


_STEADY_TEXT = {True: "yes", False: "no", None: "-"}


def _optional(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(rows: Sequence[Row], totals: Sequence[Row]) -> str:
    lines = [
        "| run | operation | memory 1 worker (µs) | Redis (µs) | of it redis-server (µs) | ÷ "
        "| probe memory / Redis (ms) | steady | Redis calls per op | spread |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        spread = " / ".join(map(str, row["spread"])) if row["spread"] else "-"
        probes = f"{_optional(row['memory_probe'], 2)} / {_optional(row['redis_probe'], 2)}"
        lines.append(
            f"| {row['run']} | {row['operation']} | {row['memory']:.1f} | {row['redis']:.1f} "
            f"| {_optional(row['store'], 1)} | {row['ratio']:.2f} | {probes} "
            f"| {_STEADY_TEXT[steady(row)]} "
            f"| {_optional(row['calls'], 3)} | {spread} |"
        )
    lines += [
        "",
        "| operation | runs | median memory (µs) | median Redis (µs) | ÷ | ratios "
        "| steady runs: median ÷ |",
        "|---|---|---|---|---|---|---|",
    ]
    for total in totals:
        ratios = ", ".join(f"{r:.2f}" for r in total["ratios"])
        lines.append(
            f"| {total['operation']} | {total['runs']} | {total['memory']:.1f} "
            f"| {total['redis']:.1f} | {total['ratio']:.2f} | {ratios} "
            f"| {total['steady_runs']}: {_optional(total['steady_ratio'], 2)} |"
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
        parser.error("no run measured an operation on both stores (b or c, and e; or f)")
    print(render(rows, summary(rows)))


if __name__ == "__main__":
    main()

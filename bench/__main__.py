"""``python -m bench``: run the benchmark scenarios, write bench/results/latest.{md,json}.

python -m bench                       # everything (~10 minutes)
python -m bench --quick               # a smoke run (~1-2 minutes)
python -m bench --scenarios b,c --streams 1000,10000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

from . import report
from .metering import busy_pct
from .scenarios import Params, Run
from .targets import judge

log = logging.getLogger("bench")

SCENARIOS = ("a", "b", "c", "d", "e", "f")


def _ints(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def parse(argv: list[str] | None = None) -> tuple[argparse.Namespace, Params]:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2 000 streams, no max-streams probe, 3 s heartbeats, fewer sweep repeats",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="comma-separated subset of a,b,c,d,e,f (default: all)",
    )
    parser.add_argument(
        "--streams", type=_ints, help="stream counts for a and b (default 1000,5000,10000)"
    )
    parser.add_argument(
        "--max-streams",
        dest="max_streams",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="probe the most streams one worker holds (a)",
    )
    parser.add_argument("--broadcasts", type=int)
    parser.add_argument(
        "--hold-seconds",
        type=float,
        help="a: keep the largest N and the max streams open this long "
        "(default 18, past the 15 s keepalive)",
    )
    parser.add_argument("--ack-connections", type=int)
    parser.add_argument(
        "--ack-mode",
        choices=("inline", "after", "none"),
        help="b/e: ack each event on receipt (inline, default), after all "
        "broadcasts were delivered, or not at all",
    )
    parser.add_argument("--open-concurrency", type=int)
    parser.add_argument("--heartbeat-seconds", type=float)
    parser.add_argument("--heartbeat-connections", type=int)
    parser.add_argument("--heartbeat-agents", type=int)
    parser.add_argument("--sweep-agents", type=int)
    parser.add_argument("--sweep-deliveries", type=int)
    parser.add_argument("--redis-streams", type=_ints, help="stream counts for e (default 10000)")
    parser.add_argument("--redis-workers", type=int)
    parser.add_argument("--pair-streams", type=int, help="f: each side's fleet (default 2000)")
    parser.add_argument("--pair-rounds", type=int, help="f: fan-out rounds (default 10)")
    parser.add_argument(
        "--pair-heartbeat-rounds", type=int, help="f: heartbeat rounds (default 10)"
    )
    parser.add_argument(
        "--server-log-level",
        help="AGENT_REGISTRY_LOG_LEVEL for the server (default info, as deployed)",
    )
    parser.add_argument(
        "--out", type=Path, default=report.RESULTS, help="directory for latest.md / latest.json"
    )
    parser.add_argument(
        "--rerender",
        action="store_true",
        help="rewrite latest.md from latest.json (no measurement)",
    )
    args = parser.parse_args(argv)

    params = Params()
    if args.quick:
        # 2 000 streams: enough to take server fds past 1 024 (select() limits and the like)
        params.streams = [2000]
        params.redis_streams = [2000]
        params.max_streams = False
        params.heartbeat_seconds = 3.0
        params.heartbeat_warmup_seconds = 0.5
        params.sweep_quiet_repeats = 200
        params.sweep_due_steps = 5
        params.settle_seconds = 0.5
        params.pair_rounds = 4
        params.pair_heartbeat_rounds = 4
    overrides = {
        "streams": args.streams,
        "max_streams": args.max_streams,
        "broadcasts": args.broadcasts,
        "ack_connections": args.ack_connections,
        "ack_mode": args.ack_mode,
        "open_concurrency": args.open_concurrency,
        "heartbeat_seconds": args.heartbeat_seconds,
        "heartbeat_connections": args.heartbeat_connections,
        "heartbeat_agents": args.heartbeat_agents,
        "sweep_agents": args.sweep_agents,
        "sweep_deliveries": args.sweep_deliveries,
        "redis_streams": args.redis_streams,
        "redis_workers": args.redis_workers,
        "pair_streams": args.pair_streams,
        "pair_rounds": args.pair_rounds,
        "pair_heartbeat_rounds": args.pair_heartbeat_rounds,
        "server_log_level": args.server_log_level,
        "hold_seconds": args.hold_seconds,
    }
    for name, value in overrides.items():
        if value is not None:
            setattr(params, name, value)
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; choose from {','.join(SCENARIOS)}")
    args.chosen = chosen
    return args, params


def main(argv: list[str] | None = None) -> int:
    args, params = parse(argv)
    logging.basicConfig(
        level=logging.INFO, format="[bench %(asctime)s] %(message)s", datefmt="%H:%M:%S"
    )
    if args.rerender:
        doc = json.loads((args.out / "latest.json").read_text())
        judge(doc)
        md_path, _ = report.write(doc, args.out)
        print(md_path.read_text())
        return 0
    started = time.monotonic()
    log_dir = Path(tempfile.mkdtemp(prefix="agent-registry-bench-"))
    log.info(f"scenarios {','.join(args.chosen)}; server logs in {log_dir}")
    machine = report.machine_info()
    background = {"before_pct": busy_pct(1.0)}
    if background["before_pct"] > 20:
        log.warning(
            f"the machine is already {background['before_pct']} % busy: figures will be noisy"
        )
    run = Run(params, log_dir)
    steps = {
        "a": run.idle_streams,
        "b": run.fanout,
        "c": run.heartbeats,
        "d": run.sweeps,
        "e": run.redis,
        "f": run.paired,
    }
    scenarios: dict[str, object] = {}
    for name in SCENARIOS:
        if name not in args.chosen:
            continue
        try:
            scenarios[name] = steps[name]()
        except Exception as exc:  # one broken scenario must not lose the others' figures
            log.warning(f"scenario {name} failed: {type(exc).__name__}: {exc}")
            scenarios[name] = {"error": f"{type(exc).__name__}: {exc}"}
    background["after_pct"] = busy_pct(1.0)
    doc = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": report.command_line(),
        "duration_s": round(time.monotonic() - started, 1),
        "machine": machine,
        "background": background,
        "parameters": {**dataclasses.asdict(params), "quick": args.quick, "scenarios": args.chosen},
        "log_dir": str(log_dir),
        "scenarios": scenarios,
    }
    judge(doc)
    md_path, json_path = report.write(doc, args.out)
    print(md_path.read_text())
    log.info(f"wrote {md_path} and {json_path} in {doc['duration_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

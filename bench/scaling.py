"""``make bench BENCH_PROFILE=big``: how fan-out and heartbeats scale with Redis workers.

For each W in 1, 2, 4, 8 it starts one redis-server and a server of W gevent workers on
it, then measures a fan-out to N open streams (every event acknowledged) and heartbeats
from N agents, with the load generator of ``make bench``. It writes the curve (events/s
and heartbeats/s against W, and the server CPU per operation, redis-server included) to
``bench/results/scaling.{md,json}``.

On a machine with at least 8 cores the load generator runs on cores of its own (a quarter
of them) and the server and redis-server on the others, pinned with
``sched_setaffinity`` (what ``taskset`` does). With fewer cores there is nothing to
separate: it runs a reduced version (W = 1, 2; N = 2 000) whose figures are labelled not
representative, because the load generator then takes the cores the workers would use.

    python -m bench.scaling                  # the profile that fits this machine
    python -m bench.scaling --workers 1,2,4,8 --streams 100000 --agents 100000
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.gunicorn import GunicornServer
from harness.redis_server import RedisServer

from . import report
from .scenarios import Params, Run, _flush_redis

log = logging.getLogger("bench")

BIG_MACHINE_CORES = 8


@dataclass
class Profile:
    workers: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    streams: int = 100_000
    agents: int = 100_000
    representative: bool = True
    loadgen_cores: list[int] = field(default_factory=list)
    server_cores: list[int] = field(default_factory=list)


def profile_for(cores: list[int]) -> Profile:
    """The big profile on a big machine; the reduced one, labelled, on a small one."""
    if len(cores) < BIG_MACHINE_CORES:
        return Profile(workers=[1, 2], streams=2000, agents=2000, representative=False)
    split = len(cores) - len(cores) // 4
    return Profile(loadgen_cores=cores[split:], server_cores=cores[:split])


class PinnedRun(Run):
    """A ``Run`` whose servers (and their redis-server) stay on the server's cores, and
    whose load generator stays on its own."""

    def __init__(self, params: Params, log_dir: Path, profile: Profile) -> None:
        super().__init__(params, log_dir)
        self.profile = profile

    def started(self, server: GunicornServer) -> None:
        if self.profile.server_cores:
            for pid in [server.pid, *server.worker_pids()]:
                os.sched_setaffinity(pid, self.profile.server_cores)


def measure_at(run: PinnedRun, redis: RedisServer, workers: int) -> dict[str, Any]:
    """Fan-out then heartbeats on W workers sharing one (freshly flushed) redis-server."""
    env = {"AGENT_REGISTRY_STORE": redis.url}
    extra = {"redis": redis.pid}
    label = f"scaling-redis-{workers}w"
    n = run.profile.streams
    _flush_redis(redis.port)
    log.info(f"W={workers}: fan-out to N={n} streams")
    fanout = run.measure(
        "real", lambda server: run.fanout_spec(server, n, "real"), workers, env, extra, label
    )
    _flush_redis(redis.port)
    log.info(f"W={workers}: heartbeats from {run.params.heartbeat_agents} agents")
    heartbeat = run.measure("real", run.heartbeat_spec, workers, env, extra, label)
    return {"workers": workers, "fanout": fanout, "heartbeat": heartbeat}


def point(measured: dict[str, Any]) -> dict[str, Any]:
    """The figures the curve plots, from one W's results (None where a run failed)."""
    fanout, heartbeat = measured["fanout"], measured["heartbeat"]
    return {
        "workers": measured["workers"],
        "events_per_s": fanout.get("events_per_s"),
        "server_and_store_cpu_us_per_event": fanout.get("server_and_store_cpu_us_per_event"),
        "exactly_once": fanout.get("exactly_once"),
        "acks_ok": (fanout.get("acks") or {}).get("all_ok"),
        "heartbeats_per_s": heartbeat.get("rps"),
        "server_and_store_cpu_us_per_heartbeat": heartbeat.get(
            "server_and_store_cpu_us_per_request"
        ),
        "heartbeat_errors": heartbeat.get("errors"),
        "error": fanout.get("error") or heartbeat.get("error"),
    }


def render(doc: dict[str, Any]) -> str:
    profile = doc["profile"]
    lines = [
        "# Agent Registry — scaling with Redis workers",
        "",
        f"Generated {doc['generated_at']} by `{doc['command']}` in {doc['duration_s']:.0f} s "
        f"on {doc['machine'].get('cores')} cores.",
        "",
    ]
    if not profile["representative"]:
        lines += [
            f"**Not representative**: this machine has fewer than {BIG_MACHINE_CORES} cores, "
            "so the load generator, the workers and redis-server share them; this is the "
            "reduced profile, which checks that the profile runs. Run it on a big machine "
            "for the curve.",
            "",
        ]
    else:
        lines += [
            f"Load generator pinned to cores {profile['loadgen_cores']}; servers and "
            f"redis-server to {profile['server_cores']}.",
            "",
        ]
    lines += [
        f"N = {profile['streams']:,} streams for the fan-out (5 broadcasts, every event "
        f"acknowledged); {profile['agents']:,} agents heartbeating back to back.",
        "",
        "| W | events/s | server CPU µs/event | exactly once, acks ok | heartbeats/s "
        "| server CPU µs/heartbeat | heartbeat errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in doc["curve"]:
        if p["error"]:
            lines.append(f"| {p['workers']} | error: {p['error']} | | | | | |")
            continue
        lines.append(
            f"| {p['workers']} | {p['events_per_s']:,} | {p['server_and_store_cpu_us_per_event']} "
            f"| {p['exactly_once']}, {p['acks_ok']} | {p['heartbeats_per_s']:,} "
            f"| {p['server_and_store_cpu_us_per_heartbeat']} | {p['heartbeat_errors']} |"
        )
    lines += ["", "Server CPU counts every worker and redis-server, from `/proc`.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__)
    parser.add_argument("--workers", help="comma-separated W values (default: by machine)")
    parser.add_argument("--streams", type=int, help="N for the fan-out")
    parser.add_argument("--agents", type=int, help="heartbeating agents")
    parser.add_argument("--out", type=Path, default=report.RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="[bench %(asctime)s] %(message)s", datefmt="%H:%M:%S"
    )
    cores = sorted(os.sched_getaffinity(0))
    profile = profile_for(cores)
    if args.workers:
        profile.workers = [int(w) for w in args.workers.split(",")]
    profile.streams = args.streams or profile.streams
    profile.agents = args.agents or profile.agents
    params = Params(heartbeat_agents=profile.agents, redis_streams=[profile.streams])
    if profile.loadgen_cores:
        os.sched_setaffinity(0, profile.loadgen_cores)  # the load generators inherit it
    started = time.monotonic()
    log_dir = Path(tempfile.mkdtemp(prefix="agent-registry-scaling-"))
    run = PinnedRun(params, log_dir, profile)
    redis = RedisServer(log_dir)
    redis.start()
    if profile.server_cores:
        os.sched_setaffinity(redis.pid, profile.server_cores)
    try:
        measured = [measure_at(run, redis, workers) for workers in profile.workers]
    finally:
        redis.stop()
    doc = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(["python -m bench.scaling", *sys.argv[1:]]),
        "duration_s": round(time.monotonic() - started, 1),
        "machine": report.machine_info(),
        "profile": asdict(profile),
        "curve": [point(m) for m in measured],
        "runs": measured,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scaling.json").write_text(json.dumps(doc, indent=2) + "\n")
    text = render(doc)
    (args.out / "scaling.md").write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The load generator: a separate process, asyncio protocols over raw sockets.

Run as ``python -m bench.loadgen``: it reads one JSON spec on stdin, drives the server at
``spec["port"]`` on 127.0.0.1 with the scenario named by ``spec["kind"]`` and prints one
JSON result on stdout.

The client is ``bench/http_client.py`` (why it is hand-written is said there), the
scenarios are ``bench/load_scenarios/``, and ``bench/metering.py`` measures this process,
the server and the machine around every phase.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import sys
from typing import Any

from .http_client import loopback_only, now
from .load_scenarios.fanout import scenario_fanout
from .load_scenarios.heartbeat import scenario_heartbeat
from .load_scenarios.idle import scenario_idle
from .load_scenarios.paired import scenario_paired
from .metering import Meter, own_cpu_seconds
from .speed_probe import SpeedProbe

SCENARIOS = {
    "idle": scenario_idle,
    "fanout": scenario_fanout,
    "heartbeat": scenario_heartbeat,
    "paired": scenario_paired,
}


def raise_nofile() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    loopback_only(spec["host"])
    started, cpu0 = now(), own_cpu_seconds()
    with SpeedProbe() as probe:
        meter = Meter(
            spec["server_pids"], spec.get("extra_pids", {}), spec.get("store_port"), probe
        )
        result = await asyncio.wait_for(
            SCENARIOS[spec["kind"]](spec, meter), spec["overall_timeout_s"]
        )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["loadgen"] = {
        "cpu_s": round(own_cpu_seconds() - cpu0, 3),
        "wall_s": round(now() - started, 3),
        "max_rss_kb": usage.ru_maxrss,
        "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "pid": os.getpid(),
    }
    return result


def main() -> None:
    spec = json.loads(sys.stdin.read())
    raise_nofile()
    # Thousands of long-lived protocol objects would be rescanned by every full GC pass;
    # collect rarely (a bounded run does not need the memory back).
    gc.set_threshold(50_000, 50, 1000)
    try:
        result = asyncio.run(run(spec))
    except TimeoutError:
        result = {"error": f"scenario exceeded its time bound ({spec['overall_timeout_s']} s)"}
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

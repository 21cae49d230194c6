"""Records for the bus tests and the two-worker script, and running such a script."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import redis

from agent_registry.core.models import Command, CommandType, Target, TargetKind
from harness.clock import T0
from harness.process import ROOT


def command(command_id: str, created: float = T0, expires: float = T0 + 60) -> Command:
    return Command(
        command_id, CommandType.DEEP_TRACE, {"n": 1}, Target(TargetKind.ALL), created, expires
    )


def run_patched(module: str, redis_url: str) -> Any:
    """Run ``module`` (a script that patches with gevent first, as a gunicorn gevent worker
    is) against ``redis_url``; the JSON it printed last."""
    done = subprocess.run(
        [sys.executable, "-W", "error", "-m", module, redis_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def command_calls(client: redis.Redis, name: str) -> int:
    """How many times the redis-server has run the command ``name`` (its own counters)."""
    stats = client.info("commandstats").get(f"cmdstat_{name}", {})
    return int(stats.get("calls", 0))

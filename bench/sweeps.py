"""(d) Sweeps, in-process on the core: run as ``python -m bench.sweeps`` (JSON in, JSON out).

The registry over a ``MemoryAgentStore`` and the commands over a ``MemoryCommandStore``,
driven by a fake clock with a no-op bus, exactly as the server's scheduler calls them
(``Registry.sweep()``; ``Commands.expire()`` then ``Commands.purge()``).

Layout, with ``A`` agents and ``D`` open deliveries (defaults 100 000 each):

* agent ``i`` registers at ``t0 + i * 100 / A`` s, so lifecycle deadlines (``+ 90 s``) are
  spread evenly over 100 s: each 1 s step makes exactly 1 % of the agents STALE-due;
* ``D / 100`` commands of 100 targets each (one group of 100 agents per command) are
  created evenly over 100 s, 60 s before those agent deadlines, and delivered: each 1 s
  step makes exactly 1 % of the deliveries EXPIRED-due at the same moment.

A sweep with nothing due runs just before the first deadline, many times; sweeps with 1 %
due run at successive 1 s steps (each one a fresh 1 %).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from harness.clock import FakeClock

T0 = 1_800_000_000.0
STALE_AFTER = 90.0
DEAD_AFTER = 300.0
EXPIRY = 60.0
RETENTION = 3600.0
SPAN = 100.0  # seconds over which registrations and commands are spread
TARGETS_PER_COMMAND = 100


class NoBus:
    def publish(self, command: Any, agent_ids: Sequence[str]) -> None:
        return None


class GcWatch:
    """Counts garbage collections (and their time) that run inside measured sweeps."""

    def __init__(self) -> None:
        self.collections = 0
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.collections += 1
            self.seconds += time.perf_counter() - self._started


def timed(fn: Callable[[], Any], gc_watch: GcWatch) -> tuple[float, Any, int]:
    before = gc_watch.collections
    start = time.perf_counter()
    value = fn()
    elapsed = time.perf_counter() - start
    return elapsed, value, gc_watch.collections - before


def stats_ms(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)
    n = len(ordered)
    return {
        "runs": n,
        "median": round(ordered[n // 2] * 1000, 4),
        "p99": round(ordered[min(n - 1, int(0.99 * n))] * 1000, 4),
        "max": round(ordered[-1] * 1000, 4),
        "min": round(ordered[0] * 1000, 4),
    }


def run(spec: dict[str, Any]) -> dict[str, Any]:
    from agent_registry.core.commands import Commands, CommandTiming
    from agent_registry.core.models import CommandType, Target, TargetKind
    from agent_registry.core.registry import Lifecycle, Registration, Registry
    from agent_registry.stores.memory import MemoryAgentStore, MemoryCommandStore

    # Log as the server does (INFO for the agent_registry loggers), to nowhere.
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115
    handler.setFormatter(
        logging.Formatter("%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s")
    )
    logger = logging.getLogger("agent_registry")
    logger.handlers[:] = [handler]
    logger.setLevel(spec.get("log_level", "INFO").upper())
    logger.propagate = False

    agents_n = spec["agents"]
    deliveries_n = spec["deliveries"]
    commands_n = max(1, deliveries_n // TARGETS_PER_COMMAND)
    groups = commands_n
    if agents_n < TARGETS_PER_COMMAND * groups:
        raise SystemExit("need at least 100 agents per command group")

    clock = FakeClock(T0)
    agent_store = MemoryAgentStore()
    registry = Registry(agent_store, clock, Lifecycle(STALE_AFTER, DEAD_AFTER))
    commands = Commands(
        agent_store, MemoryCommandStore(), NoBus(), clock, CommandTiming(EXPIRY, RETENTION)
    )

    build_started = time.perf_counter()
    for i in range(agents_n):
        clock.now = T0 + i * SPAN / agents_n
        registry.register(Registration(id=f"agent-{i:07d}", group=f"g{i % groups:05d}"))
    payload = {"durationSeconds": 60}
    command_ids = []
    # Commands are created 60 s before the agent deadlines they line up with.
    for j in range(commands_n):
        clock.now = T0 + STALE_AFTER - EXPIRY + j * SPAN / commands_n
        snapshot = commands.send(
            Target(TargetKind.GROUP, f"g{j:05d}"), CommandType.DEEP_TRACE, payload
        )
        command_ids.append(snapshot.command.id)
        for delivery in snapshot.deliveries:
            commands.mark_delivered(delivery.agent_id, (snapshot.command.id,))
    build_s = time.perf_counter() - build_started
    open_deliveries = sum(
        1
        for command_id in command_ids
        for d in commands.get(command_id).deliveries
        if not d.status.is_final
    )

    gc.collect()
    gc_watch = GcWatch()
    gc.callbacks.append(gc_watch)

    def sweep_commands(now: float) -> int:
        expired = commands.expire(now)
        commands.purge(now)
        return expired

    # Nothing due: just before the first deadline.
    quiet = T0 + STALE_AFTER - 0.5
    reps = spec["quiet_repeats"]
    lifecycle_quiet, commands_quiet, both_quiet = [], [], []
    quiet_gc = 0
    for _ in range(reps):
        t, n, g = timed(lambda: registry.sweep(quiet), gc_watch)
        assert not n
        lifecycle_quiet.append(t)
        t2, n2, g2 = timed(lambda: sweep_commands(quiet), gc_watch)
        assert not n2
        commands_quiet.append(t2)
        both_quiet.append(t + t2)
        quiet_gc += g + g2

    # 1 % due: successive 1 s steps, each making 1 % of agents and of deliveries due.
    steps = spec["due_steps"]
    lifecycle_due, commands_due, both_due = [], [], []
    transitions, expired_counts, due_gc = [], [], 0
    step = SPAN / 100
    for k in range(steps):
        at = T0 + STALE_AFTER + (k + 1) * step - step / 2000
        t, done, g = timed(lambda at=at: registry.sweep(at), gc_watch)
        t2, expired, g2 = timed(lambda at=at: sweep_commands(at), gc_watch)
        lifecycle_due.append(t)
        commands_due.append(t2)
        both_due.append(t + t2)
        transitions.append(len(done))
        expired_counts.append(expired)
        due_gc += g + g2
    gc.callbacks.remove(gc_watch)

    return {
        "agents": agents_n,
        "open_deliveries": open_deliveries,
        "commands": commands_n,
        "targets_per_command": TARGETS_PER_COMMAND,
        "build_s": round(build_s, 2),
        "log_level": spec.get("log_level", "INFO"),
        "nothing_due": {
            "lifecycle_ms": stats_ms(lifecycle_quiet),
            "commands_ms": stats_ms(commands_quiet),
            "both_ms": stats_ms(both_quiet),
            "gc_collections_inside": quiet_gc,
        },
        "one_percent_due": {
            "lifecycle_ms": stats_ms(lifecycle_due),
            "commands_ms": stats_ms(commands_due),
            "both_ms": stats_ms(both_due),
            "transitions_per_sweep": sorted(set(transitions)),
            "expired_per_sweep": sorted(set(expired_counts)),
            "gc_collections_inside": due_gc,
        },
        "gc_seconds_inside_measured_sweeps": round(gc_watch.seconds, 4),
        "max_rss_kb": _max_rss_kb(),
    }


def _max_rss_kb() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    spec = json.loads(sys.stdin.read())
    try:
        result = run(spec)
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()

"""What processes and the machine used: CPU and memory from /proc, and latency summaries.

The load generator measures itself (``getrusage``) and the server (``/proc/PID/stat``,
``/proc/PID/status``) around every phase, and the whole machine (``/proc/stat``), so a
reader can tell whether the server, the load generator or the rest of the machine was the
limit.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Sequence
from typing import Any

import redis

from .speed_probe import SpeedProbe

CLK_TCK = os.sysconf("SC_CLK_TCK")

now = time.monotonic


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_preemptions(pid: int) -> int:
    """How often the kernel took the CPU from a process that could have gone on running
    (``nonvoluntary_ctxt_switches``, all its threads); 0 for a process that is gone."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/status") as handle:
                for line in handle:
                    if line.startswith("nonvoluntary_ctxt_switches:"):
                        total += int(line.split()[1])
    except OSError:
        return total
    return total


def proc_rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_open_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def proc_nofile_limit(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/limits") as handle:
            for line in handle:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
    except (OSError, ValueError):
        return None
    return None


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, from /proc/stat."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    total = sum(values[:8])
    idle = values[3] + values[4]
    return (total - idle) / CLK_TCK, total / CLK_TCK


def busy_pct(seconds: float = 1.0) -> float:
    """How busy the whole machine is (all cores), sampled over ``seconds``."""
    b0, t0 = machine_cpu()
    time.sleep(seconds)
    b1, t1 = machine_cpu()
    return round(100 * (b1 - b0) / max(t1 - t0, 1 / CLK_TCK), 1)


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# The Redis commands that are one call each from a worker: every write on the hot paths is
# a script or a transaction. Commands that scripts run inside are counted apart by Redis.
STORE_CALLS = ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_exec")


def store_calls(client: redis.Redis) -> int:
    """How many scripts and transactions ``client``'s redis-server has run."""
    stats = client.info("commandstats")
    return sum(int(stats.get(name, {}).get("calls", 0)) for name in STORE_CALLS)


class Meter:
    """CPU of the load generator, the server processes and the machine over one phase, and
    (``store_port``: a Redis store) the calls redis-server answered."""

    def __init__(
        self,
        server_pids: Sequence[int],
        extra_pids: dict[str, int],
        store_port: int | None = None,
        probe: SpeedProbe | None = None,
    ) -> None:
        self.server_pids = list(server_pids)
        self.extra_pids = dict(extra_pids)
        self._probe = probe
        # One connection for every snapshot: a new one each time would be counted work too.
        self._store = None if store_port is None else redis.Redis(host="127.0.0.1", port=store_port)

    def alike(
        self, server_pids: Sequence[int], extra_pids: dict[str, int], store_port: int | None
    ) -> Meter:
        """A meter of other processes that shares this one's speed probe."""
        return Meter(server_pids, extra_pids, store_port, self._probe)

    def snapshot(self) -> dict[str, Any]:
        busy, total = machine_cpu()
        return {
            "t": now(),
            "own": own_cpu_seconds(),
            "server": sum(proc_cpu_seconds(pid) or 0.0 for pid in self.server_pids),
            "extra": {name: proc_cpu_seconds(pid) or 0.0 for name, pid in self.extra_pids.items()},
            "busy": busy,
            "total": total,
            "preemptions": sum(
                proc_preemptions(pid) for pid in [*self.server_pids, *self.extra_pids.values()]
            ),
            "store_calls": None if self._store is None else store_calls(self._store),
        }

    def rss_kb(self) -> int:
        return sum(proc_rss_kb(pid) or 0 for pid in self.server_pids)

    def delta(self, start: dict[str, Any], end: dict[str, Any]) -> dict[str, Any]:
        wall = max(end["t"] - start["t"], 1e-9)
        own = end["own"] - start["own"]
        server = end["server"] - start["server"]
        extra = {name: end["extra"][name] - start["extra"][name] for name in start["extra"]}
        busy = end["busy"] - start["busy"]
        other = max(0.0, busy - own - server - sum(extra.values()))
        return {
            "wall_s": round(wall, 4),
            "loadgen_cpu_s": round(own, 3),
            "loadgen_cpu_pct": round(100 * own / wall, 1),
            "server_cpu_s": round(server, 3),
            "server_cpu_pct": round(100 * server / wall, 1),
            **{f"{name}_cpu_pct": round(100 * value / wall, 1) for name, value in extra.items()},
            # With the store's own processes (redis-server; none for the memory store): what
            # an operation costs the machine.
            "server_and_store_cpu_s": round(server + sum(extra.values()), 3),
            # CPU used on the machine by anything else (other jobs, the kernel's softirq
            # work not charged to a process): % of one core.
            "other_cpu_pct": round(100 * other / wall, 1),
            "machine_busy_pct_of_all_cores": round(
                100 * busy / max(end["total"] - start["total"], 1e-9), 1
            ),
            # Times the server's processes (and the store's) were preempted: they share the
            # cores with each other and the load generator.
            "server_and_store_preemptions": end["preemptions"] - start["preemptions"],
            **(
                {}
                if start["store_calls"] is None
                else {"store_calls": end["store_calls"] - start["store_calls"]}
            ),
            # How fast the cores ran meanwhile (speed_probe.py): the CPU ms of a fixed work.
            **({} if self._probe is None else {"probe": self._probe.window(start["t"], end["t"])}),
        }


def percentiles(values: Sequence[float], scale: float = 1000.0) -> dict[str, float | None]:
    """p50 / p99 / max (nearest rank), multiplied by ``scale`` (s -> ms by default)."""
    if not values:
        return {"p50": None, "p99": None, "max": None, "count": 0}
    ordered = sorted(values)

    def rank(q: float) -> float:
        index = min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))
        return round(ordered[index] * scale, 3)

    return {
        "p50": rank(0.50),
        "p99": rank(0.99),
        "max": round(ordered[-1] * scale, 3),
        "count": len(ordered),
    }

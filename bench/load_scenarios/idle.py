"""(a) Idle streams: how long N streams take to open, and what each costs the server."""

from __future__ import annotations

import asyncio
import os
import resource
from typing import Any

from ..http_client import Client, source_addresses
from ..metering import Meter, proc_nofile_limit, proc_open_fds
from .fleet import Fleet, agent_names, register_all, wait_settled


async def scenario_idle(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """(a) Open N idle streams: time to open, server RSS per open stream."""
    host, port = spec["host"], spec["port"]
    count = spec["n"]
    if spec.get("max"):
        count = max_streams_budget(spec, meter)
    agents = agent_names(spec["agent_prefix"], count)
    result: dict[str, Any] = {"n": count}
    snap = meter.snapshot()
    result["register"] = await register_all(spec, agents)
    result["register"]["cpu"] = meter.delta(snap, meter.snapshot())
    await wait_settled(spec["settle_s"])  # let the server drop the pool's connections
    rss_before = meter.rss_kb()
    fds_before = [proc_open_fds(pid) for pid in meter.server_pids]
    fleet = Fleet(host, port)
    sources = spec.get("sources") or source_addresses(count)
    snap = meter.snapshot()
    result["open"] = await fleet.open(
        agents, spec["open_concurrency"], sources, spec["open_timeout_s"]
    )
    result["open"]["cpu"] = meter.delta(snap, meter.snapshot())
    result["open"]["sources"] = sources
    opened = result["open"]["opened"]
    rss_open = meter.rss_kb()
    await wait_settled(spec["settle_s"])
    rss_after = meter.rss_kb()
    result["held"] = sum(1 for stream in fleet.streams if not stream.ended)
    hold = spec.get("hold_s", 0)
    if hold:
        # Past the server's keepalive: every stream must have had a ping and still be open.
        await asyncio.sleep(hold)
        result["hold"] = {
            "seconds": hold,
            "still_open": sum(1 for stream in fleet.streams if not stream.ended),
            "pinged_and_open": sum(
                1 for stream in fleet.streams if not stream.ended and stream.pings
            ),
            "lost": sum(1 for stream in fleet.streams if stream.ended),
            "rss_kb": meter.rss_kb(),
        }
        result["held"] = result["hold"]["still_open"]
    result["rss_kb"] = {"before_open": rss_before, "just_opened": rss_open, "settled": rss_after}
    result["server_fds_before_open"] = fds_before
    result["server_fds_open"] = [proc_open_fds(pid) for pid in meter.server_pids]
    if opened:
        per_stream = (rss_after - rss_before) * 1024 / opened
        result["rss_bytes_per_stream"] = round(per_stream)
    cpu = result["open"]["cpu"]
    if opened:
        result["server_cpu_us_per_open"] = round(cpu["server_cpu_s"] * 1e6 / opened, 1)
        result["loadgen_cpu_us_per_open"] = round(cpu["loadgen_cpu_s"] * 1e6 / opened, 1)
    # Is the server still answering with every stream open? (one spare fd is budgeted)
    probe = Client(host, port)
    try:
        status, _ = await asyncio.wait_for(
            probe.request("POST", f"/api/v1/agents/{agents[0]}/heartbeat"), timeout=10
        )
        result["probe_status"] = status
    except (OSError, ConnectionError, TimeoutError) as exc:
        result["probe_status"] = type(exc).__name__
    finally:
        probe.close()
    fleet.close()
    return result


def max_streams_budget(spec: dict[str, Any], meter: Meter) -> int:
    """How many streams fit: the worker's free file descriptors, and ours."""
    margin = spec.get("fd_margin", 8)
    budgets = []
    for pid in meter.server_pids:
        limit, used = proc_nofile_limit(pid), proc_open_fds(pid)
        if limit is not None and used is not None:
            budgets.append(limit - used - margin)
    # Called before registering: the registration pool is closed again before opening.
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    own_used = proc_open_fds(os.getpid()) or 16
    budgets.append(soft - own_used - margin)
    budgets.append(spec.get("max_cap", 1_000_000))
    return max(1, min(budgets))

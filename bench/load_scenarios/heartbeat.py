"""(c) Heartbeats: concurrent keep-alive clients sending heartbeats for a fixed time."""

from __future__ import annotations

import asyncio
from typing import Any

from ..http_client import Client, now
from ..metering import Meter, percentiles
from .fleet import agent_names, register_all


async def scenario_heartbeat(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """(c) Concurrent keep-alive clients sending heartbeats for a fixed time."""
    host, port = spec["host"], spec["port"]
    agents = agent_names(spec["agent_prefix"], spec["agents"])
    result: dict[str, Any] = {"register": await register_all(spec, agents)}
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    counter = 0
    measuring = False
    stop_at = 0.0

    async def worker(client: Client) -> None:
        nonlocal counter
        while now() < stop_at:
            agent_id = agents[counter % len(agents)]
            counter += 1
            t0 = now()
            try:
                status, _ = await client.request("POST", f"/api/v1/agents/{agent_id}/heartbeat")
                key = str(status)
            except (OSError, ConnectionError) as exc:
                key = type(exc).__name__
                await asyncio.sleep(0.01)
            if measuring:
                latencies.append(now() - t0)
                statuses[key] = statuses.get(key, 0) + 1

    clients = [Client(host, port) for _ in range(spec["connections"])]
    warmup, duration = spec["warmup_s"], spec["duration_s"]
    stop_at = now() + warmup + duration + 60  # reset below, once measuring starts
    tasks = [asyncio.ensure_future(worker(client)) for client in clients]
    await asyncio.sleep(warmup)
    latencies.clear()
    measuring = True
    snap = meter.snapshot()
    started = now()
    stop_at = started + duration
    await asyncio.sleep(duration)
    measuring = False
    cpu = meter.delta(snap, meter.snapshot())
    elapsed = now() - started
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    for client in clients:
        client.close()
    ok = statuses.get("204", 0)
    result.update(
        {
            "requests": sum(statuses.values()),
            "ok": ok,
            "errors": sum(statuses.values()) - ok,
            "statuses": statuses,
            "seconds": round(elapsed, 3),
            "rps": round(ok / elapsed, 1),
            "latency_ms": percentiles(latencies),
            "cpu": cpu,
            "server_cpu_us_per_request": round(cpu["server_cpu_s"] * 1e6 / ok, 1) if ok else None,
            "loadgen_cpu_us_per_request": round(cpu["loadgen_cpu_s"] * 1e6 / ok, 1) if ok else None,
        }
    )
    return result

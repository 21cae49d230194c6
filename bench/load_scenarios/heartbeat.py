"""(c) Heartbeats: concurrent keep-alive clients sending heartbeats for a fixed time.

With ``spec["enrollment_token"]`` (the server runs with auth on) every agent registers with
it and sends its own ``accessToken`` on each heartbeat, as a real agent does. Two phases are
measured: the **first use** (each agent's first heartbeat, once: with auth on, the server
verifies each token for the first time) and the **steady state** (heartbeats back to back
for ``duration_s`` after a warm-up: every token was seen before, as when agents heartbeat
for hours with the same token).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..http_client import Client, Headers, now
from ..metering import Meter, percentiles
from .fleet import agent_names, bearer, held_per_worker, register_all


async def scenario_heartbeat(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """(c) Concurrent keep-alive clients sending heartbeats for a fixed time."""
    host, port = spec["host"], spec["port"]
    agents = agent_names(spec["agent_prefix"], spec["agents"])
    tokens: dict[str, str] = {}
    result: dict[str, Any] = {"register": await register_all(spec, agents, tokens)}
    auth = bool(spec.get("enrollment_token"))
    result["auth"] = auth
    if auth and len(tokens) < len(agents):
        result["error"] = (
            f"with auth on, {len(tokens)} of {len(agents)} registrations answered an "
            f"accessToken (statuses {result['register']['statuses']})"
        )
        return result
    headers: dict[str, Headers] = {agent: bearer(tokens[agent]) for agent in agents} if auth else {}
    clients = [Client(host, port) for _ in range(spec["connections"])]
    try:
        await asyncio.gather(*(client.open() for client in clients))
        await asyncio.sleep(0.2)  # let the server accept them: not part of a measured phase
        result["connections_per_worker"] = held_per_worker(port, spec["server_pids"], clients)
        result["first_use"] = await _first_use(clients, agents, headers, meter)
        result.update(await _steady(spec, clients, agents, headers, meter))
    finally:
        for client in clients:
            client.close()
    return result


async def heartbeat_once(client: Client, agent_id: str, headers: Headers) -> str:
    """One heartbeat: its status, or the error's name (after a short pause, so that a
    broken connection does not spin)."""
    try:
        status, _ = await client.request(
            "POST", f"/api/v1/agents/{agent_id}/heartbeat", headers=headers
        )
        return str(status)
    except (OSError, ConnectionError) as exc:
        await asyncio.sleep(0.01)
        return type(exc).__name__


def _figures(
    statuses: dict[str, int], latencies: list[float], cpu: dict[str, Any], elapsed: float
) -> dict[str, Any]:
    ok = statuses.get("204", 0)
    return {
        "requests": sum(statuses.values()),
        "ok": ok,
        "errors": sum(statuses.values()) - ok,
        "statuses": statuses,
        "seconds": round(elapsed, 3),
        "rps": round(ok / elapsed, 1),
        "latency_ms": percentiles(latencies),
        "cpu": cpu,
        "server_cpu_us_per_request": round(cpu["server_cpu_s"] * 1e6 / ok, 1) if ok else None,
        "server_and_store_cpu_us_per_request": round(cpu["server_and_store_cpu_s"] * 1e6 / ok, 1)
        if ok
        else None,
        "loadgen_cpu_us_per_request": round(cpu["loadgen_cpu_s"] * 1e6 / ok, 1) if ok else None,
        **(
            {"store_calls_per_request": round(cpu["store_calls"] / ok, 3)}
            if ok and "store_calls" in cpu
            else {}
        ),
    }


async def _first_use(
    clients: list[Client], agents: list[str], headers: dict[str, Headers], meter: Meter
) -> dict[str, Any]:
    """One heartbeat per agent, over every connection at once."""
    pending = list(reversed(agents))
    latencies: list[float] = []
    statuses: dict[str, int] = {}

    async def worker(client: Client) -> None:
        while pending:
            agent_id = pending.pop()
            t0 = now()
            key = await heartbeat_once(client, agent_id, headers.get(agent_id, ()))
            latencies.append(now() - t0)
            statuses[key] = statuses.get(key, 0) + 1

    snap = meter.snapshot()
    started = now()
    await asyncio.gather(*(worker(client) for client in clients))
    cpu = meter.delta(snap, meter.snapshot())
    return _figures(statuses, latencies, cpu, now() - started)


async def _steady(
    spec: dict[str, Any],
    clients: list[Client],
    agents: list[str],
    headers: dict[str, Headers],
    meter: Meter,
) -> dict[str, Any]:
    """Heartbeats back to back on every connection, cycling through the agents."""
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
            key = await heartbeat_once(client, agent_id, headers.get(agent_id, ()))
            if measuring:
                latencies.append(now() - t0)
                statuses[key] = statuses.get(key, 0) + 1

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
    return _figures(statuses, latencies, cpu, elapsed)

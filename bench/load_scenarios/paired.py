"""(f) The same operations on two servers at once, alternated in short blocks.

Both servers (the memory store with one worker, the Redis store with two) hold their fleets
open together; the load generator sends a block of work to one, waits until it is done and
acknowledged, then a block to the other, swapping which goes first every round. Each block
is metered on its own server's processes only. Measured one after the other, a minute apart,
the two sides met different host speeds on this VM (up to 2x within seconds,
docs/performance.md); blocks a second or two long, alternated, meet the same ones.
"""

from __future__ import annotations

import asyncio
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..http_client import Client, now, source_addresses
from ..metering import Meter
from .acks import Acker
from .fanout import broadcast, delivery_figures
from .fleet import (
    Fleet,
    agent_names,
    held_per_worker,
    open_one_at_a_time,
    register_all,
    wait_settled,
)
from .heartbeat import heartbeat_once


@dataclass
class Side:
    """One server of the pair: its fleet, its ack pool and what its blocks cost."""

    name: str
    spec: dict[str, Any]
    meter: Meter
    agents: list[str]
    fleet: Fleet
    acker: Acker | None = None
    poster: Client | None = None
    broadcasts: list[dict[str, Any]] = field(default_factory=list)
    blocks: list[dict[str, Any]] = field(default_factory=list)


async def scenario_paired(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """Fan-out blocks, then heartbeat blocks, alternated between ``spec["sides"]``."""
    count = spec["n"]
    sources = source_addresses(2 * (count + spec["ack_connections"] + 8))
    sides = []
    for side_spec in spec["sides"]:
        merged = {**spec, **side_spec}
        sides.append(
            Side(
                side_spec["name"],
                merged,
                meter.alike(
                    side_spec["server_pids"],
                    side_spec.get("extra_pids", {}),
                    side_spec.get("store_port"),
                ),
                agent_names(merged["agent_prefix"], count),
                Fleet(merged["host"], merged["port"]),
            )
        )
    result: dict[str, Any] = {"n": count, "sides": [side.name for side in sides]}
    try:
        for side in sides:
            result[f"{side.name}_register"] = await register_all(side.spec, side.agents)
        await wait_settled(spec["settle_s"])
        for side in sides:
            opened = await side.fleet.open(
                side.agents, spec["open_concurrency"], sources, spec["open_timeout_s"]
            )
            if opened["opened"] < count:
                result["error"] = f"{side.name}: only {opened['opened']} of {count} streams opened"
                return result
            side.acker = Acker(
                side.spec["host"], side.spec["port"], spec["ack_connections"], sources, inline=True
            )
            side.fleet.on_command = side.acker.on_command
            await side.acker.open()
            result[f"{side.name}_ack_connections_per_worker"] = held_per_worker(
                side.spec["port"], side.spec["server_pids"], side.acker.clients
            )
            side.poster = Client(side.spec["host"], side.spec["port"], sources[0])
        result["fanout"] = await _fanout_blocks(spec, sides)
        result["heartbeat"] = await _heartbeat_blocks(spec, sides)
    finally:
        for side in sides:
            if side.acker is not None:
                await side.acker.drain(0)  # nothing is left to wait for: closes its pool
            if side.poster is not None:
                side.poster.close()
            side.fleet.close()
    return result


def _orders(sides: Sequence[Side], rounds: int) -> list[list[Side]]:
    """Each round's order: the first side first in even rounds, last in odd ones."""
    return [list(sides) if r % 2 == 0 else list(reversed(sides)) for r in range(rounds)]


async def _fanout_blocks(spec: dict[str, Any], sides: Sequence[Side]) -> dict[str, Any]:
    payload = json.dumps({"type": "deep-trace", "payload": spec["payload"]}).encode()
    per_block = spec["broadcasts_per_block"]

    async def block(side: Side) -> dict[str, Any]:
        assert side.poster is not None and side.acker is not None
        snap = side.meter.snapshot()
        received, acked = side.fleet.received, side.acker.statuses.get("200", 0)
        for _ in range(per_block):
            side.fleet.expect(side.fleet.received + spec["n"])
            sent = await broadcast(side.poster, payload, side.fleet, spec["delivery_timeout_s"])
            side.broadcasts.append(sent)
        settled = await side.acker.settle(spec["ack_timeout_s"])
        cpu = side.meter.delta(snap, side.meter.snapshot())
        return {
            "operations": side.fleet.received - received,
            "acks_ok": side.acker.statuses.get("200", 0) - acked,
            # Its acks all answered before the next block began: none of its work is
            # metered in another block.
            "settled": settled,
            "cpu": cpu,
        }

    for side in sides:  # a warm-up block each, not counted
        await block(side)
    for order in _orders(sides, spec["rounds"]):
        for side in order:
            side.blocks.append(await block(side))
    out = _summary(sides)
    for side in sides:
        assert side.acker is not None
        figures = delivery_figures(side.fleet, side.broadcasts, len(side.broadcasts))
        statuses = dict(side.acker.statuses)
        out[side.name].update(
            # These three count the warm-up block too.
            exactly_once=figures["exactly_once"],
            latency_ms=figures["latency_ms"],
            ack_statuses=statuses,
            # Every event acknowledged with 200, each block's before the next began, and no
            # broadcast short of its fleet.
            all_acked=statuses == {"200": side.fleet.received}
            and all(b["settled"] for b in side.blocks)
            and sum(b["acks_ok"] for b in side.blocks) == out[side.name]["operations"]
            and not any(b["timed_out"] for b in side.broadcasts),
        )
        side.blocks.clear()
    out["valid"] = all(out[s.name]["exactly_once"] and out[s.name]["all_acked"] for s in sides)
    return out


async def _heartbeat_blocks(spec: dict[str, Any], sides: Sequence[Side]) -> dict[str, Any]:
    agents = spec["heartbeat_agents"]
    clients = {
        side.name: [
            Client(side.spec["host"], side.spec["port"])
            for _ in range(spec["heartbeat_connections"])
        ]
        for side in sides
    }
    statuses: dict[str, dict[str, int]] = {side.name: {} for side in sides}
    spread: dict[str, list[int]] = {}
    try:
        for side in sides:
            await open_one_at_a_time(clients[side.name])
            spread[side.name] = held_per_worker(
                side.spec["port"], side.spec["server_pids"], clients[side.name]
            )

        async def block(side: Side) -> dict[str, Any]:
            counter = 0
            ok = 0
            stop_at = now() + spec["heartbeat_block_s"]

            async def worker(client: Client) -> None:
                nonlocal counter, ok
                while now() < stop_at:
                    agent_id = side.agents[counter % agents]
                    counter += 1
                    key = await heartbeat_once(client, agent_id, ())
                    ok += key == "204"
                    seen = statuses[side.name]
                    seen[key] = seen.get(key, 0) + 1

            snap = side.meter.snapshot()
            await asyncio.gather(*(worker(client) for client in clients[side.name]))
            return {"operations": ok, "cpu": side.meter.delta(snap, side.meter.snapshot())}

        for side in sides:
            await block(side)
            statuses[side.name].clear()
        for order in _orders(sides, spec["heartbeat_rounds"]):
            for side in order:
                side.blocks.append(await block(side))
    finally:
        for group in clients.values():
            for client in group:
                client.close()
    out = _summary(sides)
    for side in sides:
        out[side.name]["statuses"] = statuses[side.name]
        out[side.name]["connections_per_worker"] = spread[side.name]
        side.blocks.clear()
    out["valid"] = all(set(statuses[s.name]) == {"204"} for s in sides)
    return out


def _summary(sides: Sequence[Side]) -> dict[str, Any]:
    """Each side's total CPU per operation over its counted blocks, and the last side's ÷
    the first side's: over all blocks, and round by round (the blocks of a round met about
    the same host speed)."""
    out: dict[str, Any] = {}
    per_round: list[list[float | None]] = []
    for side in sides:
        operations = sum(b["operations"] for b in side.blocks)
        cpu_s = sum(b["cpu"]["server_and_store_cpu_s"] for b in side.blocks)
        workers_s = sum(b["cpu"]["server_cpu_s"] for b in side.blocks)
        out[side.name] = {
            "operations": operations,
            "server_and_store_cpu_s": round(cpu_s, 3),
            "cpu_us_per_operation": _per(cpu_s, operations),
            # The workers' part of it (the rest is the store's own processes: redis-server).
            "workers_cpu_us_per_operation": _per(workers_s, operations),
            **_store_calls(side.blocks, operations),
            "preemptions_per_operation": round(
                sum(b["cpu"]["server_and_store_preemptions"] for b in side.blocks)
                / max(operations, 1),
                4,
            ),
            "blocks": [
                {
                    "operations": b["operations"],
                    "cpu_us_per_operation": _per(
                        b["cpu"]["server_and_store_cpu_s"], b["operations"]
                    ),
                    "wall_s": b["cpu"]["wall_s"],
                    "probe_ms": (b["cpu"].get("probe") or {}).get("mean_ms"),
                }
                for b in side.blocks
            ],
        }
        per_round.append([blk["cpu_us_per_operation"] for blk in out[side.name]["blocks"]])
    first, last = out[sides[0].name], out[sides[-1].name]
    ratios = [round(b / a, 3) for a, b in zip(per_round[0], per_round[-1], strict=True) if a and b]
    out["ratio"] = (
        round(last["cpu_us_per_operation"] / first["cpu_us_per_operation"], 3)
        if first["cpu_us_per_operation"] and last["cpu_us_per_operation"]
        else None
    )
    out["ratio_of"] = f"{sides[-1].name} ÷ {sides[0].name}"
    out["round_ratios"] = ratios
    out["median_round_ratio"] = round(statistics.median(ratios), 3) if ratios else None
    return out


def _store_calls(blocks: Sequence[dict[str, Any]], operations: int) -> dict[str, float]:
    """Redis calls per operation, when the side's meter counts them."""
    calls = [b["cpu"]["store_calls"] for b in blocks if "store_calls" in b["cpu"]]
    if not calls or not operations:
        return {}
    return {"store_calls_per_operation": round(sum(calls) / operations, 3)}


def _per(cpu_s: float, operations: int) -> float | None:
    return round(cpu_s * 1e6 / operations, 1) if operations else None

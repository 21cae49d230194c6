"""(b) Fan-out: broadcasts to N open streams, each event acknowledged, tracking read back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from ..http_client import Client, now, source_addresses
from ..metering import Meter, percentiles
from .acks import Acker
from .fleet import Fleet, agent_names, held_per_worker, register_all, wait_settled


async def scenario_fanout(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """(b) Broadcasts to N open streams: latency POST -> receipt, exactly once, acks."""
    host, port, count = spec["host"], spec["port"], spec["n"]
    agents = agent_names(spec["agent_prefix"], count)
    result: dict[str, Any] = {"n": count}
    result["register"] = await register_all(spec, agents)
    await wait_settled(spec["settle_s"])
    fleet = Fleet(host, port)
    sources = spec.get("sources") or source_addresses(count + spec["ack_connections"] + 8)
    result["open"] = await fleet.open(
        agents, spec["open_concurrency"], sources, spec["open_timeout_s"]
    )
    opened = result["open"]["opened"]
    result["rss_kb_streams_open"] = meter.rss_kb()
    if opened < count:
        fleet.close()
        result["error"] = f"only {opened} of {count} streams opened"
        return result

    acker = None
    if spec["ack"]:
        inline = spec.get("ack_mode", "inline") == "inline"
        acker = Acker(host, port, spec["ack_connections"], sources, inline)
        fleet.on_command = acker.on_command
        if inline:
            # How the ack connections spread over the workers: a worker batches only its
            # own acks' round trips to a Redis store.
            await acker.open()
            result["ack_connections_per_worker"] = held_per_worker(
                port, spec["server_pids"], acker.clients
            )

    poster = Client(host, port, sources[0])
    payload = json.dumps({"type": "deep-trace", "payload": spec["payload"]}).encode()
    snap = meter.snapshot()
    rss_peak = meter.rss_kb()
    broadcasts: list[dict[str, Any]] = []
    for index in range(spec["broadcasts"]):
        fleet.expect((index + 1) * count)
        broadcasts.append(await broadcast(poster, payload, fleet, spec["delivery_timeout_s"]))
        rss_peak = max(rss_peak, meter.rss_kb())
        if broadcasts[-1]["timed_out"]:
            break
    delivery_end = now()
    delivery_cpu = meter.delta(snap, meter.snapshot())
    ack_drain_s = await acker.drain(spec["ack_timeout_s"]) if acker else None
    total_cpu = meter.delta(snap, meter.snapshot())
    rss_peak = max(rss_peak, meter.rss_kb())

    delivery = delivery_figures(fleet, broadcasts, spec["broadcasts"])
    delivered = delivery["latency_ms"]["count"]
    result.update(
        {
            "broadcasts": [{k: v for k, v in b.items() if k != "posted_at"} for b in broadcasts],
            "events_expected": count * spec["broadcasts"],
            **delivery,
            "delivery_cpu": delivery_cpu,
            "total_cpu": total_cpu,
            "rss_kb_peak": rss_peak,
            "delivery_span_s": round(delivery_end - broadcasts[0]["posted_at"], 3)
            if broadcasts
            else None,
        }
    )
    if delivered:
        result["server_cpu_us_per_event"] = round(total_cpu["server_cpu_s"] * 1e6 / delivered, 1)
        result["server_and_store_cpu_us_per_event"] = round(
            total_cpu["server_and_store_cpu_s"] * 1e6 / delivered, 1
        )
        result["loadgen_cpu_us_per_event"] = round(total_cpu["loadgen_cpu_s"] * 1e6 / delivered, 1)
        if "store_calls" in total_cpu:
            result["store_calls_per_event"] = round(total_cpu["store_calls"] / delivered, 3)
    if acker:
        first_post = broadcasts[0]["posted_at"] if broadcasts else None
        result["acks"] = acker.figures(
            delivered, count * spec["broadcasts"], first_post, ack_drain_s
        )
    command_ids = [b["command_id"] for b in broadcasts if b["command_id"]]
    if spec.get("verify") and command_ids:
        result["tracking"] = await verify_tracking(
            host, port, command_ids, count, acked=acker is not None
        )
    poster.close()
    fleet.close()
    return result


async def broadcast(poster: Client, payload: bytes, fleet: Fleet, timeout: float) -> dict[str, Any]:
    """POST one broadcast and wait until the fleet received it (or ``timeout`` passed)."""
    posted_at = now()
    post = asyncio.ensure_future(
        poster.request("POST", "/api/v1/agents/commands", payload, retry=False)
    )
    timed_out = False
    try:
        await asyncio.wait_for(fleet.target_reached.wait(), timeout)
    except TimeoutError:
        timed_out = True
    status: int | str
    answered_at: float | None
    try:
        status, body = await asyncio.wait_for(post, timeout)
        answered_at = now()
        command_id = json.loads(body).get("commandId") if status == 202 else None
    except (OSError, ConnectionError, TimeoutError, ValueError) as exc:
        status, command_id, answered_at = type(exc).__name__, None, None
    return {
        "status": status,
        "command_id": command_id,
        "post_answered_ms": round((answered_at - posted_at) * 1000, 2) if answered_at else None,
        "timed_out": timed_out,
        "posted_at": posted_at,
    }


def delivery_figures(
    fleet: Fleet, broadcasts: list[dict[str, Any]], expected_broadcasts: int
) -> dict[str, Any]:
    """Latency, events/s and exactly-once from the receipts; sets each broadcast's window."""
    # Latency: POST sent -> event read, on this process's clock.
    posted = {b["command_id"].encode(): b["posted_at"] for b in broadcasts if b["command_id"]}
    latencies = [t - posted[cid] for cid, t in fleet.receipts if cid in posted]
    unknown = sum(1 for cid, _ in fleet.receipts if cid not in posted)
    last_receipt: dict[bytes, float] = {}
    for cid, t in fleet.receipts:
        if t > last_receipt.get(cid, 0.0):
            last_receipt[cid] = t
    for b in broadcasts:
        sent_id = b["command_id"].encode() if b["command_id"] else None
        b["window_s"] = (
            round(last_receipt[sent_id] - b["posted_at"], 4) if sent_id in last_receipt else None
        )
    # Exactly once: every stream saw every command id exactly once.
    missing = duplicates = 0
    for stream in fleet.streams:
        for cid in posted:
            seen = stream.counts.get(cid, 0)
            missing += seen == 0
            duplicates += max(0, seen - 1)
    windows = [b["window_s"] for b in broadcasts if b["window_s"]]
    return {
        "events_received": fleet.received,
        "events_per_s": round(len(latencies) / sum(windows), 1) if windows else None,
        "events_per_s_definition": (
            "events received / sum over broadcasts of (last receipt - POST sent)"
        ),
        "latency_ms": percentiles(latencies),
        "exactly_once": missing == 0
        and duplicates == 0
        and unknown == 0
        and len(posted) == expected_broadcasts,
        "missing": missing,
        "duplicates": duplicates,
        "unknown_ids": unknown,
        "streams_ended_early": fleet.ended,
    }


async def verify_tracking(
    host: str, port: int, command_ids: Sequence[str], count: int, acked: bool
) -> dict[str, Any]:
    """Read each command back: every delivery should be ACKNOWLEDGED (or DELIVERED)."""
    client = Client(host, port)
    summaries = []
    try:
        for command_id in command_ids:
            status, body = await client.request("GET", f"/api/v1/commands/{command_id}")
            summaries.append(
                json.loads(body).get("summary") if status == 200 else {"status": status}
            )
    except (OSError, ConnectionError, ValueError) as exc:
        return {"ok": False, "error": repr(exc)}
    finally:
        client.close()
    field = "acknowledged" if acked else "delivered"
    ok = all(
        summary.get(field) == count and summary.get("targets") == count for summary in summaries
    )
    return {"ok": ok, "expected": {field: count}, "summaries": summaries}

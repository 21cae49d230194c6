"""(b) Fan-out: broadcasts to N open streams, each event acknowledged, tracking read back."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from typing import Any

from ..http_client import Client, EventStream, now, source_addresses
from ..metering import Meter, percentiles
from .fleet import Fleet, agent_names, register_all, run_pool, wait_settled


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

    # Acks: each event is acknowledged on receipt, through a pool of keep-alive connections
    # (an agent would use its own; 10 000 more sockets would not fit the fd budget).
    ack_queue: asyncio.Queue[tuple[str, str, float]] = asyncio.Queue()
    ack_latencies: list[float] = []
    ack_statuses: dict[str, int] = {}
    ack_times: list[float] = []
    acking = bool(spec["ack"])
    deferred: list[tuple[str, str, float]] = []
    if acking:

        def on_command(stream: EventStream, command_id: bytes, received_at: float) -> None:
            ack_queue.put_nowait((stream.agent_id, command_id.decode(), received_at))

        def on_command_later(stream: EventStream, command_id: bytes, received_at: float) -> None:
            deferred.append((stream.agent_id, command_id.decode(), received_at))

        inline = spec.get("ack_mode", "inline") == "inline"
        fleet.on_command = on_command if inline else on_command_later

    async def ack_worker(client: Client) -> None:
        while True:
            agent_id, command_id, received_at = await ack_queue.get()
            try:
                status, _ = await client.request(
                    "POST", f"/api/v1/agents/{agent_id}/commands/{command_id}/ack"
                )
                key = str(status)
            except (OSError, ConnectionError) as exc:
                key = type(exc).__name__
            done = now()
            ack_statuses[key] = ack_statuses.get(key, 0) + 1
            ack_latencies.append(done - received_at)
            ack_times.append(done)
            ack_queue.task_done()

    ack_task = None
    if acking:
        ack_task = asyncio.ensure_future(
            run_pool(spec["ack_connections"], host, port, ack_worker, sources)
        )

    poster = Client(host, port, sources[0])
    payload = json.dumps({"type": "deep-trace", "payload": spec["payload"]}).encode()
    broadcasts: list[dict[str, Any]] = []
    command_ids: list[str] = []
    snap = meter.snapshot()
    rss_peak = meter.rss_kb()
    for index in range(spec["broadcasts"]):
        fleet.expect((index + 1) * count)
        posted_at = now()
        post = asyncio.ensure_future(
            poster.request("POST", "/api/v1/agents/commands", payload, retry=False)
        )
        timed_out = False
        try:
            await asyncio.wait_for(fleet.target_reached.wait(), spec["delivery_timeout_s"])
        except TimeoutError:
            timed_out = True
        status: int | str
        answered_at: float | None
        try:
            status, body = await asyncio.wait_for(post, spec["delivery_timeout_s"])
            answered_at = now()
            command_id = json.loads(body).get("commandId") if status == 202 else None
        except (OSError, ConnectionError, TimeoutError, ValueError) as exc:
            status, command_id, answered_at = type(exc).__name__, None, None
        broadcasts.append(
            {
                "status": status,
                "command_id": command_id,
                "post_answered_ms": round((answered_at - posted_at) * 1000, 2)
                if answered_at
                else None,
                "timed_out": timed_out,
                "posted_at": posted_at,
            }
        )
        rss_peak = max(rss_peak, meter.rss_kb())
        if command_id:
            command_ids.append(command_id)
        if timed_out:
            break
    delivery_end = now()
    delivery_cpu = meter.delta(snap, meter.snapshot())

    ack_drain_s = None
    if acking:
        drain_started = now()
        for item in deferred:
            ack_queue.put_nowait(item)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ack_queue.join(), spec["ack_timeout_s"])
        ack_drain_s = round(now() - drain_started, 3)
        ack_task.cancel()  # type: ignore[union-attr]
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await ack_task  # type: ignore[misc]
    total_cpu = meter.delta(snap, meter.snapshot())
    rss_peak = max(rss_peak, meter.rss_kb())

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
    delivered = len(latencies)
    result.update(
        {
            "broadcasts": [{k: v for k, v in b.items() if k != "posted_at"} for b in broadcasts],
            "events_expected": count * spec["broadcasts"],
            "events_received": fleet.received,
            "events_per_s": round(delivered / sum(windows), 1) if windows else None,
            "events_per_s_definition": (
                "events received / sum over broadcasts of (last receipt - POST sent)"
            ),
            "latency_ms": percentiles(latencies),
            "exactly_once": missing == 0
            and duplicates == 0
            and unknown == 0
            and len(posted) == spec["broadcasts"],
            "missing": missing,
            "duplicates": duplicates,
            "unknown_ids": unknown,
            "streams_ended_early": fleet.ended,
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
        result["loadgen_cpu_us_per_event"] = round(total_cpu["loadgen_cpu_s"] * 1e6 / delivered, 1)
    if acking:
        ok = ack_statuses.get("200", 0)
        span = (max(ack_times) - broadcasts[0]["posted_at"]) if ack_times else None
        result["acks"] = {
            "sent": sum(ack_statuses.values()),
            "ok": ok,
            "statuses": ack_statuses,
            "all_ok": ok == delivered and delivered == count * spec["broadcasts"],
            "latency_ms": percentiles(ack_latencies),
            "per_s": round(ok / span, 1) if span else None,
            "drain_after_last_delivery_s": ack_drain_s,
            "done_after_first_post_s": round(span, 3) if span else None,
        }
    if spec.get("verify") and command_ids:
        result["tracking"] = await verify_tracking(host, port, command_ids, count, acking)
    poster.close()
    fleet.close()
    return result


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

"""make bench's meter counts the calls a Redis store answered within a phase: scripts and
transactions, one each from a worker, not the commands a script runs inside."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
import redis

from bench.metering import Meter, proc_preemptions
from bench.tables import summary_rows
from harness.redis_server import RedisServer
from harness.wait import wait_until

pytestmark = pytest.mark.redis


def test_a_phase_counts_the_scripts_and_transactions_redis_ran_in_it(
    redis_server: RedisServer,
) -> None:
    redis_server.flush()
    redis_client = redis.Redis(port=redis_server.port)
    meter = Meter([], {}, store_port=redis_server.port)
    start = meter.snapshot()
    redis_client.eval("redis.call('SET', 'k', 1) return redis.call('GET', 'k')", 0)
    pipe = redis_client.pipeline(transaction=True)
    pipe.get("k").get("k")
    pipe.execute()
    redis_client.get("k")  # not a script or a transaction: not counted

    assert meter.delta(start, meter.snapshot())["store_calls"] == 2


def redis_rows(fanout: dict[str, Any], heartbeat: dict[str, Any]) -> list[list[str]]:
    e = {"available": True, "workers": 2, "fanout": {"2000": fanout}, "heartbeat": heartbeat}
    doc = {"scenarios": {"e": e}}
    return [row for row in summary_rows(doc) if "Redis calls" in row[1]]


def test_without_a_store_port_nothing_is_counted_or_shown() -> None:
    meter = Meter([], {})
    assert "store_calls" not in meter.delta(meter.snapshot(), meter.snapshot())
    assert redis_rows({"events_per_s": 1.0}, {"rps": 1.0}) == []


def test_the_summary_shows_the_calls_per_operation_when_counted() -> None:
    rows = redis_rows(
        {
            "events_per_s": 1.0,
            "store_calls_per_event": 0.1875,
            "ack_connections_per_worker": [9, 56],
        },
        {"rps": 1.0, "store_calls_per_request": 0.0312, "connections_per_worker": [32, 32]},
    )
    assert [row[1:3] + row[5:] for row in rows] == [
        [
            "Redis calls per event and its ack (scripts + transactions)",
            "0.188",
            "ack connections per worker: 9 / 56",
        ],
        [
            "Redis calls per request (scripts + transactions)",
            "0.031",
            "connections per worker: 32 / 32",
        ],
    ]


def test_preemptions_count_a_process_that_shares_its_core_with_a_busy_one() -> None:
    core = min(os.sched_getaffinity(0))
    spin = [sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{core}}})\nwhile 1: pass"]
    spinners = [subprocess.Popen(spin) for _ in range(2)]
    try:
        meter = Meter([spinners[0].pid], {"other": spinners[1].pid})
        start = meter.snapshot()
        assert wait_until(
            lambda: meter.delta(start, meter.snapshot())["server_and_store_preemptions"] > 0,
            within=10,
        )
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert proc_preemptions(spinners[0].pid) == 0  # gone: nothing to read

"""f: the same work alternated in blocks between two servers that are up at once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bench import scenarios
from bench.load_scenarios.fleet import Fleet
from bench.load_scenarios.paired import Side, _orders, _summary, scenario_paired
from bench.metering import Meter
from bench.scenarios import Params, Run, run_loadgen
from harness.gunicorn import GunicornServer


def _side(name: str, blocks: list[tuple[int, float]]) -> Side:
    side = Side(name, {}, Meter([], {}), [], Fleet("127.0.0.1", 1))
    side.blocks = [
        {
            "operations": ops,
            "cpu": {
                "server_and_store_cpu_s": cpu,
                "server_cpu_s": cpu / 2,
                "server_and_store_preemptions": ops // 100,
                "wall_s": 1.0,
            },
        }
        for ops, cpu in blocks
    ]
    return side


def test_the_first_side_goes_first_in_even_rounds_and_last_in_odd_ones() -> None:
    a, b = _side("a", []), _side("b", [])
    assert [[s.name for s in order] for order in _orders([a, b], 3)] == [
        ["a", "b"],
        ["b", "a"],
        ["a", "b"],
    ]


def test_the_ratio_is_the_last_side_over_the_first_in_all_and_round_by_round() -> None:
    memory = _side("memory", [(1000, 0.10), (1000, 0.20)])
    redis = _side("redis", [(1000, 0.11), (2000, 0.50)])

    out = _summary([memory, redis])

    assert out["memory"]["cpu_us_per_operation"] == 150.0
    assert out["memory"]["workers_cpu_us_per_operation"] == 75.0
    assert out["redis"]["preemptions_per_operation"] == 0.01
    assert out["redis"]["cpu_us_per_operation"] == round(0.61e6 / 3000, 1)
    assert out["ratio"] == round(round(0.61e6 / 3000, 1) / 150.0, 3)
    assert out["round_ratios"] == [1.1, 1.25]
    assert out["median_round_ratio"] == 1.175


def _spec(memory: GunicornServer, other: GunicornServer, n: int) -> dict[str, Any]:
    def side(name: str, server: GunicornServer) -> dict[str, Any]:
        return {
            "name": name,
            "port": server.port,
            "server_pids": server.worker_pids(),
            "agent_prefix": f"pair-{name}",
        }

    return {
        "host": "127.0.0.1",
        "group": "bench",
        "n": n,
        "sides": [side("memory", memory), side("redis", other)],
        "register_connections": 4,
        "register_timeout_s": 30,
        "open_concurrency": 8,
        "open_timeout_s": 30,
        "settle_s": 0,
        "ack_connections": 2,
        "payload": {"durationSeconds": 60},
        "delivery_timeout_s": 20,
        "ack_timeout_s": 20,
        "rounds": 2,
        "broadcasts_per_block": 2,
        "heartbeat_rounds": 2,
        "heartbeat_block_s": 0.2,
        "heartbeat_agents": n,
        "heartbeat_connections": 2,
    }


def test_every_counted_event_is_acknowledged_and_each_block_metered(tmp_path: Path) -> None:
    n = 5
    with (
        GunicornServer("real", tmp_path, label="pair-a") as first,
        GunicornServer("real", tmp_path, label="pair-b") as second,
    ):
        spec = _spec(first, second, n)
        meter = Meter(first.worker_pids() + second.worker_pids(), {})
        result = asyncio.run(asyncio.wait_for(scenario_paired(spec, meter), 60))

    fanout, heartbeat = result["fanout"], result["heartbeat"]
    assert "error" not in result
    for name in ("memory", "redis"):
        # Two rounds of two broadcasts to five streams; the warm-up block is not counted.
        assert fanout[name]["operations"] == 2 * 2 * n
        assert len(fanout[name]["blocks"]) == 2
        assert fanout[name]["exactly_once"] and fanout[name]["all_acked"]
        assert fanout[name]["ack_statuses"] == {"200": 3 * 2 * n}
        assert len(heartbeat[name]["blocks"]) == 2
        assert heartbeat[name]["operations"] > 0
        assert set(heartbeat[name]["statuses"]) == {"204"}
    assert fanout["valid"] and heartbeat["valid"]
    assert result["memory_ack_connections_per_worker"] == [2]
    assert heartbeat["memory"]["connections_per_worker"] == [2]
    assert fanout["ratio_of"] == "redis ÷ memory"


@pytest.mark.redis
@pytest.mark.e2e
def test_run_paired_measures_memory_and_redis_side_by_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = Params(
        pair_streams=6,
        pair_rounds=2,
        pair_broadcasts_per_block=1,
        pair_heartbeat_rounds=2,
        pair_heartbeat_block_seconds=0.2,
        ack_connections=2,
        heartbeat_connections=2,
        register_connections=4,
        open_concurrency=8,
        settle_seconds=0,
        server_log_level="warning",
    )

    specs: list[dict[str, Any]] = []

    def run_and_keep_spec(spec: dict[str, Any]) -> dict[str, Any]:
        specs.append(spec)
        return run_loadgen(spec)

    monkeypatch.setattr(scenarios, "run_loadgen", run_and_keep_spec)

    out = Run(params, tmp_path).paired()

    assert out["available"], out.get("error") or out.get("reason")
    assert out["fanout"]["valid"] and out["heartbeat"]["valid"]
    assert out["fanout"]["redis"]["operations"] == 2 * 6
    assert sum(out["redis_ack_connections_per_worker"]) == 2
    assert out["fanout"]["redis"]["store_calls_per_operation"] > 0
    # The Redis side is metered with its redis-server, on its own port; memory without.
    memory, on_redis = specs[0]["sides"]
    assert (memory["name"], on_redis["name"]) == ("memory", "redis")
    assert "extra_pids" not in memory and "store_port" not in memory
    assert list(on_redis["extra_pids"]) == ["redis"]
    assert on_redis["store_port"] != memory["port"] != on_redis["port"]

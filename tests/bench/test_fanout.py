"""b: broadcasts to open streams, each event acknowledged, against a real server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.load_scenarios.fanout import scenario_fanout
from bench.metering import Meter
from harness.gunicorn import GunicornServer


def test_the_ack_connections_are_counted_without_the_one_posting(tmp_path: Path) -> None:
    n, ack_connections = 4, 3
    with GunicornServer("real", tmp_path, label="fanout") as server:
        spec = {
            "host": "127.0.0.1",
            "port": server.port,
            "server_pids": server.worker_pids(),
            "agent_prefix": "fanout-agent",
            "group": "bench",
            "n": n,
            "register_connections": 2,
            "register_timeout_s": 30,
            "open_concurrency": 4,
            "open_timeout_s": 30,
            "settle_s": 0,
            "broadcasts": 2,
            "ack": True,
            "ack_mode": "inline",
            "verify": True,
            "ack_connections": ack_connections,
            "payload": {"durationSeconds": 60},
            "delivery_timeout_s": 20,
            "ack_timeout_s": 20,
        }
        meter = Meter(server.worker_pids(), {})
        result = asyncio.run(asyncio.wait_for(scenario_fanout(spec, meter), 60))

    assert "error" not in result
    assert result["acks"]["all_ok"]
    # One worker accepted the three ack connections; the poster's is not one of them.
    assert result["ack_connections_per_worker"] == [ack_connections]

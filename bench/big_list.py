"""The big list: ``GET /api/v1/agents`` over 100 000 agents, and a heartbeat sent meanwhile.

Run as ``python -m bench.big_list`` (``--help`` for the knobs; about a minute). For each
store it starts a fresh one-worker server of the real app on a seeded fleet (memory:
``harness.seeded_app``; Redis: ``harness.big_fleet.seed_redis`` before the server starts),
then, several times each:

* the whole list, while one keep-alive connection sends heartbeats back to back: the list's
  time to its first byte and to its last, its size, and every heartbeat's latency (the
  contract: a heartbeat sent meanwhile answers within 100 ms);
* (Redis) ``?status=LIVE&group=g3``, a tenth of the fleet, the same way.

Prints one JSON object. The load is asyncio on raw sockets (``bench.http_client``), in this
one process, on the same machine as the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.http_client import LOOPBACK, Client, HttpConnection, connect
from harness.big_fleet import SEED_ENV, agent_id, seed_redis
from harness.gunicorn import GunicornServer
from harness.redis_server import RedisServer

now = time.monotonic


class TimedConnection(HttpConnection):
    """Notes when the first bytes of the answer arrived."""

    first_byte: float | None = None

    def data_received(self, data: bytes) -> None:
        if self.first_byte is None:
            self.first_byte = now()
        super().data_received(data)


async def timed_list(port: int, path: str, heartbeats: int = 1) -> dict[str, Any]:
    """GET ``path`` on a new connection while ``heartbeats`` connections each send
    heartbeats back to back until the list is complete."""
    conn = await connect(LOOPBACK, port, TimedConnection)
    assert isinstance(conn, TimedConnection)
    beaters = [Client(LOOPBACK, port) for _ in range(heartbeats)]
    for beater in beaters:  # connected before the list starts
        status, _ = await beater.request("POST", f"/api/v1/agents/{agent_id(0)}/heartbeat")
        assert status == 204, status
    latencies: list[float] = []
    done = asyncio.Event()

    async def beat(client: Client) -> None:
        while not done.is_set():
            sent = now()
            status, _ = await client.request("POST", f"/api/v1/agents/{agent_id(0)}/heartbeat")
            assert status == 204, status
            latencies.append(now() - sent)

    started = now()
    tasks = [asyncio.create_task(beat(beater)) for beater in beaters]
    status, body = await conn.request(f"{LOOPBACK}:{port}", "GET", path)
    finished = now()
    done.set()
    await asyncio.gather(*tasks)
    conn.close()
    for beater in beaters:
        beater.close()
    assert status == 200, (status, body[:200])
    agents = json.loads(body)
    return {
        "agents": len(agents),
        "bytes": len(body),
        "first_byte_s": round((conn.first_byte or finished) - started, 4),
        "total_s": round(finished - started, 4),
        "heartbeats": len(latencies),
        "heartbeat_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "heartbeat_max_ms": round(max(latencies) * 1000, 2),
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "agents": runs[0]["agents"],
        "bytes": runs[0]["bytes"],
        "total_s": [run["total_s"] for run in runs],
        "first_byte_s": [run["first_byte_s"] for run in runs],
        "heartbeat_max_ms": [run["heartbeat_max_ms"] for run in runs],
        "heartbeat_p50_ms": [run["heartbeat_p50_ms"] for run in runs],
        "heartbeats": [run["heartbeats"] for run in runs],
    }


async def measure(port: int, paths: dict[str, str], repeat: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, path in paths.items():
        await timed_list(port, path)  # warm-up: first-time imports, caches
        results[name] = summary([await timed_list(port, path) for _ in range(repeat)])
    return results


def run_store(store: str, agents: int, repeat: int, log_dir: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "harness.seeded_app:app"]
    env = {"AGENT_REGISTRY_LOG_LEVEL": "warning"}
    paths = {"all": "/api/v1/agents"}
    redis_server = None
    if store == "memory":
        env[SEED_ENV] = str(agents)
    else:
        redis_server = RedisServer(log_dir).start()
        with redis_server.client() as client:
            seeded = now()
            seed_redis(client, agents)
            print(f"seeded {agents} agents in Redis in {now() - seeded:.1f} s", file=sys.stderr)
        env["AGENT_REGISTRY_STORE"] = redis_server.url
        paths["live_g3"] = "/api/v1/agents?status=LIVE&group=g3"
    server = GunicornServer("real", log_dir, 1, env, f"big-list-{store}", command)
    try:
        server.start(timeout=60)
        return asyncio.run(measure(server.port, paths, repeat))
    finally:
        server.stop()
        if redis_server is not None:
            redis_server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (after a warm-up)")
    parser.add_argument("--stores", default="memory,redis")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="big-list-") as tmp:
        results = {
            store: run_store(store, args.agents, args.repeat, Path(tmp))
            for store in args.stores.split(",")
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

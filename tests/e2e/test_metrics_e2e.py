"""GET /metrics from real gunicorn workers sharing Redis: any worker's answer covers every
worker of the host, and a worker that exits keeps its counts."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.gunicorn import GunicornServer
from harness.redis_server import RedisServer
from harness.wait import wait_until
from tests.e2e.many_streams import client_port
from tests.e2e.sse_client import StreamListener

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


def scrape(url: str) -> dict[str, Counter[tuple[tuple[str, str], ...]]]:
    """Sample name -> label set -> value, on a fresh connection (any worker answers)."""
    with httpx.Client(base_url=url, timeout=5) as http:
        answer = http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    samples: dict[str, Counter[tuple[tuple[str, str], ...]]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, Counter())[labels] += sample.value
    return samples


# The routes the tests send to; the harness's start-up probe (an unmatched URL) and the
# scrapes themselves are counted too, under other routes, and left out of the sums.
SENT_ROUTES = frozenset(
    {
        "/api/v1/agents/register",
        "/api/v1/agents/<agent_id>/heartbeat",
        "/api/v1/agents/<agent_id>",
    }
)


def requests_total(url: str) -> float:
    """Requests counted on the host to the routes the tests send to."""
    counted = scrape(url).get("agent_registry_http_requests_total", Counter())
    return sum(value for labels, value in counted.items() if dict(labels)["route"] in SENT_ROUTES)


def counted_reaches(url: str, expected: float) -> bool:
    """Each worker moves its counts into the shared files within a second: poll for them."""
    return wait_until(lambda: requests_total(url) == expected, within=10)


def send_spread(server: GunicornServer, count: int) -> Counter[int | None]:
    """``count`` requests, each on its own connection, so that the kernel spreads them over
    the workers; returns how many each worker (pid) answered."""
    served: Counter[int | None] = Counter()
    for n in range(count):  # n % 3 == 2 goes to an unmatched URL, not in SENT_ROUTES
        with httpx.Client(base_url=server.url, timeout=5) as http:
            if n % 3 == 0:
                answer = http.post("/api/v1/agents/metrics-e2e/heartbeat")
            elif n % 3 == 1:
                answer = http.get("/api/v1/agents/metrics-e2e")
            else:
                answer = http.get(f"/no/such/page/{n}")
            served[server.owner_of(client_port(answer))] += 1
    return served


@pytest.fixture
def metrics_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"left by an earlier run")
    return directory


@pytest.fixture
def server(start_server, redis_server: RedisServer, metrics_dir: Path) -> GunicornServer:
    redis_server.flush()
    env = {
        "AGENT_REGISTRY_STORE": redis_server.url,
        # A short keepalive: a stream whose client left is noticed at the next ping.
        "AGENT_REGISTRY_KEEPALIVE_SECONDS": "0.3",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),  # honoured, and emptied at start
    }
    return start_server(env, workers=2)


def test_any_workers_answer_sums_every_workers_requests(server: GunicornServer) -> None:
    with httpx.Client(base_url=server.url, timeout=5) as http:
        http.post("/api/v1/agents/register", json={"id": "metrics-e2e", "group": "m"})
    served = send_spread(server, 60)
    assert len(served) == 2, f"one worker answered everything: {served}"
    sent = 1 + 40  # the registration, and 40 of the 60 (the others go to an unmatched URL)

    assert counted_reaches(server.url, sent), (requests_total(server.url), sent)
    samples = scrape(server.url)
    routes = {dict(labels)["route"] for labels in samples["agent_registry_http_requests_total"]}
    assert routes >= {"/api/v1/agents/<agent_id>/heartbeat", "/api/v1/agents/<agent_id>"}
    assert "/no/such/page/2" not in routes and "unmatched" in routes


def test_a_worker_that_exits_keeps_its_counts(server: GunicornServer, metrics_dir: Path) -> None:
    assert not (metrics_dir / "counter_1.db").exists()
    served = send_spread(server, 30)
    counted = 20  # 20 of the 30 go to a SENT_ROUTES route
    assert counted_reaches(server.url, counted)
    victim = max(served, key=lambda pid: served[pid])  # it answered some of them itself
    assert victim in server.worker_pids()
    assert (metrics_dir / f"counter_{victim}.db").exists()
    assert (metrics_dir / f"gauge_livesum_{victim}.db").exists()

    os.kill(victim, signal.SIGTERM)
    assert wait_until(
        lambda: victim not in server.worker_pids() and len(server.worker_pids()) == 2,
        within=20,
    ), "gunicorn did not replace the worker"

    # Every earlier answer is still counted, whoever answers; the master marked the worker
    # dead, which drops its live gauges only.
    assert requests_total(server.url) == counted
    assert (metrics_dir / f"counter_{victim}.db").exists()
    assert not (metrics_dir / f"gauge_livesum_{victim}.db").exists()


def test_open_streams_are_summed_over_live_workers(server: GunicornServer) -> None:
    with httpx.Client(base_url=server.url, timeout=5) as http:
        for n in range(4):
            http.post("/api/v1/agents/register", json={"id": f"stream-{n}", "group": "m"})
    streams = [StreamListener(server.url, f"stream-{n}").start() for n in range(4)]
    try:

        def open_streams() -> float:
            return sum(scrape(server.url)["agent_registry_streams_open"].values())

        assert wait_until(lambda: open_streams() == 4, within=5), open_streams()
    finally:
        for stream in streams:
            stream.close()
    assert wait_until(lambda: open_streams() == 0, within=10), open_streams()

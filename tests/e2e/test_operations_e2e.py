"""Readiness on real gunicorn servers: a Redis outage (stopped, then paused) and SIGTERM."""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from harness.wait import wait_until
from tests.e2e.many_streams import client_port
from tests.e2e.sse_client import StreamListener

pytestmark = pytest.mark.e2e

FAST = {"AGENT_REGISTRY_KEEPALIVE_SECONDS": "0.3"}
READY = {"status": "ready", "checks": {"store": "ok", "bus": "ok", "shutdown": "ok"}}
# A stopped Redis closes the subscriber's connection: it cannot subscribe again until Redis
# is back. A paused one closes nothing: the subscriber stays subscribed, and relays again
# as soon as Redis resumes.
STORE_STOPPED = {
    "status": "unready",
    "checks": {"store": "unavailable", "bus": "unsubscribed", "shutdown": "ok"},
}
STORE_PAUSED = {
    "status": "unready",
    "checks": {"store": "unavailable", "bus": "ok", "shutdown": "ok"},
}
DRAINING = {"status": "unready", "checks": {"store": "ok", "bus": "ok", "shutdown": "draining"}}


def readiness(http: httpx.Client) -> tuple[int, object]:
    answer = http.get("/readyz")
    return answer.status_code, answer.json()


@pytest.mark.redis
def test_readiness_fails_on_the_store_while_redis_is_stopped_and_recovers(
    start_server, redis_server
):
    redis_server.flush()
    server = start_server({**FAST, "AGENT_REGISTRY_STORE": redis_server.url})
    with httpx.Client(base_url=server.url, timeout=5) as http:
        assert readiness(http) == (200, READY)
        redis_server.stop()
        try:
            assert wait_until(lambda: readiness(http) == (503, STORE_STOPPED), 5)
            assert http.get("/healthz").json() == {"status": "ok"}  # alive: no restart wanted
            assert http.get("/api/v1/server").json()["code"] == "STORE_UNAVAILABLE"
        finally:
            redis_server.start()
        assert wait_until(lambda: readiness(http) == (200, READY), 10)
        assert http.get("/api/v1/server").status_code == 200


@pytest.mark.redis
def test_readiness_answers_in_bounded_time_while_redis_is_paused(start_server, own_redis):
    """A paused Redis accepts connections and never answers: the probe must not hang."""
    server = start_server({**FAST, "AGENT_REGISTRY_STORE": own_redis.url})
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert readiness(http) == (200, READY)
        own_redis.signal(signal.SIGSTOP)
        try:
            for _ in range(3):
                started = time.monotonic()
                assert readiness(http) == (503, STORE_PAUSED)
                assert time.monotonic() - started < 2.5
            started = time.monotonic()
            assert http.get("/healthz").status_code == 200
            assert time.monotonic() - started < 1.0
        finally:
            own_redis.signal(signal.SIGCONT)
        assert wait_until(lambda: readiness(http) == (200, READY), 10)


def test_on_sigterm_readiness_names_shutdown_while_the_worker_drains(start_server):
    """Polled on a keep-alive connection opened before SIGTERM: the worker stops accepting
    new connections about a second after SIGTERM, but keeps serving the ones it has
    (up to graceful_timeout), so the draining answer is seen on that connection every time.
    """
    server = start_server({"AGENT_REGISTRY_KEEPALIVE_SECONDS": "30"})
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(base_url=server.url, timeout=5, limits=limits) as http:
        http.post("/api/v1/agents/register", json={"id": "drain-1", "group": "drain"})
        first = http.get("/readyz")
        assert (first.status_code, first.json()) == (200, READY)
        port = client_port(first)
        stream = StreamListener(server.url, "drain-1").start()
        try:
            server.signal(signal.SIGTERM)

            def draining() -> bool:
                answer = http.get("/readyz")
                assert client_port(answer) == port, "the keep-alive connection was replaced"
                return (answer.status_code, answer.json()) == (503, DRAINING)

            assert wait_until(draining, 5)
            assert http.get("/healthz").status_code == 200  # still serving, only unready
            assert stream.ended.wait(5), "the open stream did not end on SIGTERM"
        finally:
            stream.close()
    assert server.process is not None
    assert wait_until(lambda: server.process.poll() is not None, 8), server.log_tail()
    assert server.process.returncode == 0

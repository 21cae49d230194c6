"""Readiness on real gunicorn servers: a Redis outage (stopped, then paused) and SIGTERM."""

from __future__ import annotations

import signal
import socket
import time

import httpx
import pytest

from harness.wait import wait_until
from tests.e2e.raw_http import Answer, exchange, read_answer, request
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
    """Polled on connections opened before SIGTERM: the worker stops accepting new
    connections about a second after SIGTERM, and from SIGTERM on it closes a keep-alive
    connection between two requests at once and every other one after its answer
    (``Connection: close``), but answers a connection's first request (within 0.5 s). So
    the draining answer is seen every time, and says ``Connection: close``."""
    server = start_server({"AGENT_REGISTRY_KEEPALIVE_SECONDS": "30"})
    with httpx.Client(base_url=server.url, timeout=5) as http:
        http.post("/api/v1/agents/register", json={"id": "drain-1", "group": "drain"})
        assert readiness(http) == (200, READY)
    fresh = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(100)]
    assert exchange(server.port, request("GET", "/healthz")).status == 200  # all accepted
    stream = StreamListener(server.url, "drain-1").start()
    try:
        server.signal(signal.SIGTERM)

        def draining() -> Answer | None:
            sock = fresh.pop()
            answer = read_answer_to(sock, request("GET", "/readyz"))
            return answer if answer is not None and answer.json == DRAINING else None

        seen = wait_until(lambda: fresh and draining(), 5)
        assert isinstance(seen, Answer), "no answer said draining"
        assert seen.status == 503
        assert seen.headers["connection"] == "close" and seen.closed
        healthz = read_answer_to(fresh.pop(), request("GET", "/healthz"))
        assert healthz is not None and healthz.status == 200  # still serving, only unready
        assert stream.ended.wait(5), "the open stream did not end on SIGTERM"
    finally:
        stream.close()
        for sock in fresh:
            sock.close()
    assert server.process is not None
    assert wait_until(lambda: server.process.poll() is not None, 8), server.log_tail()
    assert server.process.returncode == 0


def read_answer_to(sock: socket.socket, raw: bytes) -> Answer | None:
    """The answer to ``raw`` on ``sock`` (then closed), or None if the server hung up."""
    with sock:
        try:
            sock.sendall(raw)
            return read_answer(sock)
        except OSError:
            return None

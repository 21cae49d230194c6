"""Hostile HTTP against a real gunicorn (API.md v1.1, "Hostile input"): what the HTTP layer
answers before the app runs is the JSON error shape, an encoded ``/`` never reaches another
route, and a stopping worker lets go of busy keep-alive clients. Each regression test is
named after the row of the fuzzing campaign (issue "Hostile input and hard days") it pins;
malformed requests go over raw sockets, since no HTTP client sends them."""

from __future__ import annotations

import http.client
import signal
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from harness.gunicorn import GunicornServer
from harness.wait import wait_until
from tests.e2e.raw_http import Answer, exchange, read_answer, request

pytestmark = pytest.mark.e2e


def refused(answer: Answer, status: int, code: str) -> None:
    """The JSON error shape, and the connection closed (the request cannot be resumed)."""
    assert answer.status == status, answer
    assert answer.headers["content-type"] == "application/json"
    body = answer.json
    assert body["status"] == status
    assert body["code"] == code
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["message"], str) and body["message"]
    assert answer.closed


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    started = GunicornServer("real", tmp_path_factory.mktemp("hostile"), label="hostile")
    with started:
        yield started


@pytest.fixture(scope="module")
def command_id(server: GunicornServer) -> str:
    """Agents ``A`` and ``B`` in group ``hostile``, and one PENDING command to ``A``."""
    with httpx.Client(base_url=server.url) as client:
        for agent_id in ("A", "B"):
            client.post("/api/v1/agents/register", json={"id": agent_id, "group": "hostile"})
        sent = client.post("/api/v1/agents/A/commands", json={"type": "replay"})
        assert sent.status_code == 202
        return str(sent.json()["commandId"])


def get(server: GunicornServer, path: str) -> httpx.Response:
    with httpx.Client(base_url=server.url) as client:
        return client.get(path)


# Row 6 -------------------------------------------------------------------------------


@pytest.mark.parametrize("slash", ["%2F", "%2f"])
def test_row6_an_encoded_slash_does_not_reach_the_deliveries_route(
    server: GunicornServer, command_id: str, slash: str
) -> None:
    """``GET /agents/A%2Fcommands`` answered A's deliveries: %2F was decoded before routing."""
    answer = exchange(server.port, request("GET", f"/api/v1/agents/A{slash}commands"))
    assert answer.status == 404
    assert answer.json["code"] == "NOT_FOUND"


@pytest.mark.parametrize("slash", ["%2F", "%2f"])
def test_row6_an_encoded_slash_does_not_reach_the_ack_fast_path(
    server: GunicornServer, command_id: str, slash: str
) -> None:
    """``POST /agents/A%2Fcommands%2FCID/ack`` recorded an ack."""
    target = f"/api/v1/agents/A{slash}commands{slash}{command_id}/ack"
    answer = exchange(server.port, request("POST", target))
    assert answer.status == 404
    assert answer.json["code"] == "NOT_FOUND"
    delivery = get(server, f"/api/v1/commands/{command_id}").json()["deliveries"][0]
    assert delivery["status"] == "PENDING"


def test_row6_an_encoded_slash_does_not_reach_the_heartbeat_fast_path(
    server: GunicornServer, command_id: str
) -> None:
    before = get(server, "/api/v1/agents/A").json()["lastHeartbeatAt"]
    answer = exchange(server.port, request("POST", "/api/v1/agents%2FA/heartbeat"))
    assert answer.status == 404
    assert answer.json["code"] == "NOT_FOUND"
    assert get(server, "/api/v1/agents/A").json()["lastHeartbeatAt"] == before


def test_row6_an_encoded_slash_does_not_turn_a_send_into_a_group_send(
    server: GunicornServer, command_id: str
) -> None:
    body = b'{"type": "replay"}'
    answer = exchange(
        server.port, request("POST", "/api/v1/agents/groups%2Fhostile/commands", body=body)
    )
    assert answer.status == 404
    assert answer.json["code"] == "NOT_FOUND"
    assert get(server, "/api/v1/agents/B/commands").json() == []


# Row 7 -------------------------------------------------------------------------------


def test_row7_a_twenty_thousand_character_query_string_is_414_uri_too_long(
    server: GunicornServer,
) -> None:
    """pywsgi answered 414 with an empty body."""
    answer = exchange(server.port, request("GET", "/api/v1/agents?" + "a" * 20_000))
    refused(answer, 414, "URI_TOO_LONG")


def test_row7_a_content_length_that_is_not_a_number_is_400_bad_request(
    server: GunicornServer,
) -> None:
    """pywsgi answered 400 with an empty body."""
    answer = exchange(
        server.port, request("POST", "/api/v1/agents/A/heartbeat", "Content-Length: abc")
    )
    refused(answer, 400, "BAD_REQUEST")


def test_row7_two_different_content_lengths_are_400_bad_request(server: GunicornServer) -> None:
    answer = exchange(
        server.port,
        request("POST", "/api/v1/agents/A/heartbeat", "Content-Length: 0", "Content-Length: 5"),
    )
    refused(answer, 400, "BAD_REQUEST")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(["X-Big: " + "x" * 9_000], id="one-field-over-8190-bytes"),
        pytest.param(["X-Big: " + "x" * 70_000], id="one-field-over-64-KiB"),
        pytest.param([f"X-{n}: 1" for n in range(101)], id="101-fields"),
    ],
)
def test_row7_headers_over_the_limits_are_431_headers_too_large(
    server: GunicornServer, headers: list[str]
) -> None:
    """pywsgi answered 400 with an empty body (and printed a traceback for 101 fields)."""
    answer = exchange(server.port, request("GET", "/api/v1/agents", *headers))
    refused(answer, 431, "HEADERS_TOO_LARGE")


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"GARBAGE\r\n\r\n", id="no-method-or-version"),
        pytest.param(b"GET / HTTP/9.x\r\nHost: x\r\n\r\n", id="bad-version"),
        pytest.param(b"HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", id="head-body"),
    ],
)
def test_row7_a_request_that_cannot_be_parsed_is_400_bad_request(
    server: GunicornServer, raw: bytes
) -> None:
    refused(exchange(server.port, raw), 400, "BAD_REQUEST")


def test_row7_a_malformed_chunked_body_is_400_and_registers_nothing(
    server: GunicornServer,
) -> None:
    """It was a 500 INTERNAL_ERROR with a logged traceback; answered 400 but kept open, the
    rest of the body would be read as the next request."""
    raw = request("POST", "/api/v1/agents/register", "Transfer-Encoding: chunked")
    raw = raw.replace(b"\r\n\r\n", b"\r\nContent-Type: application/json\r\n\r\n")
    answer = exchange(server.port, raw + b'zz\r\n{"id": "C", "group": "hostile"}\r\n0\r\n\r\n')
    refused(answer, 400, "BAD_REQUEST")
    assert get(server, "/api/v1/agents/C").status_code == 404


def test_row7_an_invalid_host_is_400_bad_request_not_a_bogus_sse_endpoint(
    server: GunicornServer,
) -> None:
    """``Host: a b`` registered the agent with ``"sseEndpoint": "http:///api/v1/..."``."""
    body = b'{"id": "D", "group": "hostile"}'
    raw = request("POST", "/api/v1/agents/register", body=body).replace(
        b"Host: 127.0.0.1", b"Host: a b"
    )
    answer = exchange(server.port, raw)
    assert answer.status == 400
    assert answer.json["code"] == "BAD_REQUEST"
    assert get(server, "/api/v1/agents/D").status_code == 404


def test_row7_the_server_still_answers_after_every_refusal(server: GunicornServer) -> None:
    assert get(server, "/healthz").status_code == 200


# Row 9 -------------------------------------------------------------------------------


class BusyClient(threading.Thread):
    """A client that reuses one keep-alive connection every 100 ms, as health checks and
    nginx's upstream keep-alive pools do, and reconnects when the server closes it."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stopped = threading.Event()
        self.answers = 0

    def run(self) -> None:
        connection: http.client.HTTPConnection | None = None
        while not self.stopped.is_set():
            try:
                if connection is None:
                    connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/healthz")
                response = connection.getresponse()
                response.read()
                self.answers += 1
                if response.getheader("Connection") == "close":
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException):
                if connection is not None:
                    connection.close()
                connection = None
            self.stopped.wait(0.1)  # the client's own pace
        if connection is not None:
            connection.close()


def test_row9_sigterm_ends_within_three_seconds_with_busy_keep_alive_clients(
    start_server,
) -> None:
    """A client reusing its connection every 100 ms held a stopping worker until
    graceful_timeout (10 s), and then the worker was killed."""
    server = start_server()
    clients = [BusyClient(server.port) for _ in range(5)]
    for client in clients:
        client.start()
    try:
        assert wait_until(lambda: all(client.answers >= 3 for client in clients), within=10)
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        assert wait_until(server.exited, within=8, step=0.01)
        stopped_after = time.monotonic() - started
    finally:
        for client in clients:
            client.stopped.set()
        for client in clients:
            client.join(5)
    assert server.returncode == 0
    assert stopped_after < 3, stopped_after


def test_row9_a_stopping_worker_answers_with_connection_close(start_server) -> None:
    """Once the worker drains, every answer tells the client to go elsewhere. /readyz is
    asked on connections opened before SIGTERM (a connection between two requests is then
    closed, a fresh one still gets its first request answered) until it says "draining"."""
    server = start_server()
    fresh = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(100)]
    assert exchange(server.port, request("GET", "/healthz")).status == 200  # all accepted
    in_use: list[socket.socket] = []

    def ask_readyz() -> Answer | None:
        if not in_use:
            in_use.append(fresh.pop())
        try:
            in_use[0].sendall(request("GET", "/readyz"))
            answer = read_answer(in_use[0])
        except OSError:  # hung up between two requests (ConnectionError included)
            in_use.pop().close()
            return None
        if answer.closed:
            in_use.pop().close()
        return answer if answer.json["checks"]["shutdown"] == "draining" else None  # type: ignore[index]

    try:
        server.signal(signal.SIGTERM)
        draining = wait_until(lambda: fresh and ask_readyz(), within=5)
        assert isinstance(draining, Answer), "no answer saw the worker draining"
        assert draining.status == 503
        assert draining.headers["connection"] == "close"
        assert draining.closed
    finally:
        for sock in fresh + in_use:
            sock.close()

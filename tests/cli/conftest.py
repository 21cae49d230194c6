"""CLI fixtures: one real server per module, the CLI run in-process, SDK agents to answer."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from agent_registry.cli.main import main
from agent_registry.client import AgentClient
from harness.gunicorn import GunicornServer

# Short expiry, so that EXPIRED (exit 5) is seen within a test.
CLI_SERVER_ENV = {
    "AGENT_REGISTRY_COMMAND_EXPIRY_SECONDS": "1.5",
    "AGENT_REGISTRY_KEEPALIVE_SECONDS": "0.5",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    with GunicornServer(log_dir=tmp_path_factory.mktemp("cli"), env=CLI_SERVER_ENV) as process:
        yield process


@pytest.fixture
def cli(server: GunicornServer) -> Callable[..., Result]:
    """``cli("agents", "list")`` runs ``agent-registry --url <server> agents list``."""

    def run(*args: str, url: str | None = None, **kwargs: Any) -> Result:
        return CliRunner().invoke(
            main, ["--url", url or server.url, *args], prog_name="agent-registry", **kwargs
        )

    return run


@pytest.fixture
def http(server: GunicornServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=5) as client:
        yield client


@pytest.fixture
def register(http: httpx.Client) -> Callable[..., dict[str, Any]]:
    """Register an agent that holds no stream (its commands stay PENDING)."""

    def register(agent_id: str, group: str, **fields: Any) -> dict[str, Any]:
        answer = http.post("/agents/register", json={"id": agent_id, "group": group, **fields})
        assert answer.status_code in (200, 201), answer.text
        return answer.json()

    return register


@pytest.fixture
def running_agent(server: GunicornServer) -> Iterator[Callable[..., AgentClient]]:
    """Start an SDK agent whose handlers answer; stopped after the test."""
    started: list[AgentClient] = []

    def start(agent_id: str, group: str, **handlers: Any) -> AgentClient:
        agent = AgentClient(
            server.url,
            agent_id,
            group,
            handlers={name.replace("_", "-"): handler for name, handler in handlers.items()},
        )
        started.append(agent.start())
        assert agent.wait_ready(5)
        return agent

    yield start
    for agent in started:
        agent.stop()


class StubServer:
    """A plain HTTP server that records each request and gives one canned JSON answer: for
    what only the client side decides (the headers it sends, how it reads a refusal)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.status, self.body = 200, b"[]"
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                stub.requests.append((self.command, self.path, dict(self.headers)))
                self.send_response(stub.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(stub.body)))
                self.end_headers()
                self.wfile.write(stub.body)

            do_GET = do_POST = answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.thread = threading.Thread(target=self.http.serve_forever, args=(0.02,), daemon=True)

    def answers(self, status: int, body: Any) -> None:
        self.status, self.body = status, json.dumps(body).encode()

    def authorizations(self) -> list[str | None]:
        return [headers.get("Authorization") for _, _, headers in self.requests]


@pytest.fixture
def stub() -> Iterator[StubServer]:
    server = StubServer()
    server.thread.start()
    yield server
    server.http.shutdown()
    server.http.server_close()

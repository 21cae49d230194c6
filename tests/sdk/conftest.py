"""SDK fixtures: a real server with fast lifecycle thresholds, and agents stopped after use."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from agent_registry.client import AgentClient
from harness.gunicorn import FAST_LIFECYCLE, GunicornServer
from harness.wait import wait_until as poll


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, every: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    value = poll(predicate, timeout, every)
    assert value, f"not true within {timeout}s: {predicate}"
    return value


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    """One server per module (lifecycle in fractions of a second); tests use their own ids."""
    env = {**FAST_LIFECYCLE, "AGENT_REGISTRY_KEEPALIVE_SECONDS": "0.5"}
    with GunicornServer(log_dir=tmp_path_factory.mktemp("sdk"), env=env) as process:
        yield process


@pytest.fixture
def http(server: GunicornServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=5) as client:
        yield client


@pytest.fixture
def make_agent(server: GunicornServer) -> Iterator[Callable[..., AgentClient]]:
    """Build (not start) agents on the module's server; every one is stopped afterwards."""
    built: list[AgentClient] = []

    def make(
        agent_id: str, group: str = "sdk", url: str | None = None, **options: Any
    ) -> AgentClient:
        agent = AgentClient(url or server.url, agent_id, group, **options)
        built.append(agent)
        return agent

    yield make
    for agent in built:
        agent.stop()


def send(
    http: httpx.Client,
    agent_id: str,
    command_type: str = "deep-trace",
    payload: dict[str, Any] | None = None,
) -> str:
    answer = http.post(
        f"/agents/{agent_id}/commands", json={"type": command_type, "payload": payload or {}}
    )
    assert answer.status_code == 202, answer.text
    return answer.json()["commandId"]


def final_delivery(http: httpx.Client, command_id: str, timeout: float = 5.0) -> dict[str, Any]:
    """The command's only delivery once it is final."""

    def read() -> dict[str, Any] | None:
        delivery = http.get(f"/commands/{command_id}").json()["deliveries"][0]
        return delivery if delivery["status"] in {"ACKNOWLEDGED", "FAILED", "EXPIRED"} else None

    return wait_until(read, timeout)

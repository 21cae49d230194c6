"""Small actions the API tests repeat, over a Flask test client."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse


class Api:
    """Thin helpers over the test client, named after what an agent or operator does."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def register(
        self, agent_id: str = "agent-1", group: str = "group-a", **fields: Any
    ) -> TestResponse:
        return self.client.post(
            "/api/v1/agents/register", json={"id": agent_id, "group": group, **fields}
        )

    def heartbeat(self, agent_id: str = "agent-1") -> TestResponse:
        return self.client.post(f"/api/v1/agents/{agent_id}/heartbeat")

    def agent(self, agent_id: str = "agent-1") -> TestResponse:
        return self.client.get(f"/api/v1/agents/{agent_id}")

    def send(
        self, path: str, command_type: str = "deep-trace", payload: Any = None
    ) -> TestResponse:
        body: dict[str, Any] = {"type": command_type}
        if payload is not None:
            body["payload"] = payload
        return self.client.post(f"/api/v1/agents/{path}", json=body)

    def ack(self, agent_id: str, command_id: str, **body: Any) -> TestResponse:
        return self.client.post(
            f"/api/v1/agents/{agent_id}/commands/{command_id}/ack", json=body or None
        )

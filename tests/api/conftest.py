"""API test fixtures: every answer is checked against the published OpenAPI document, and
agent streams are opened through the test client (``streams``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.api.agent_stream import Stream
from tests.openapi_contract import ContractClient


@pytest.fixture
def make_app(make_app):
    def build(**config: object) -> Flask:
        app = make_app(**config)
        app.test_client_class = ContractClient
        return app

    return build


@pytest.fixture
def streams(client: FlaskClient) -> Iterator[Callable[[str], Stream]]:
    """``streams("agent-1")`` opens the agent's event stream; every one is closed after."""
    opened: list[Stream] = []

    def open_stream(agent_id: str) -> Stream:
        stream = Stream(client, agent_id)
        opened.append(stream)
        return stream

    yield open_stream
    for stream in opened:
        stream.close()

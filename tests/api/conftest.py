"""Every answer an API test receives is checked against the published OpenAPI document."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.openapi_contract import ContractClient


@pytest.fixture
def make_app(make_app):
    def build(**config: object) -> Flask:
        app = make_app(**config)
        app.test_client_class = ContractClient
        return app

    return build

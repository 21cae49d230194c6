"""Shared fixtures: a fake clock, a fresh app per test, its test client, and a leak check."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import greenlet
import pytest
from flask import Flask
from flask.testing import FlaskClient
from gevent.hub import Hub

from agent_registry import create_app
from agent_registry.server.runtime import Runtime
from harness.clock import FakeClock
from harness.gunicorn import GunicornServer
from harness.redis_server import RedisServer


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


_apps: list[Flask] = []

# Half the longest jump of the fake clock between two sweeps in the app tests.
FAKE_CLOCK_SWEEP_INTERVAL = 86_400


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session (restartable: its data survive a restart);
    tests flush it before use."""
    server = RedisServer(tmp_path_factory.mktemp("redis"), durable=True).start()
    yield server
    server.stop()


@pytest.fixture(params=["memory", "redis"])
def store_url(request) -> str:
    """The contract holds on both stores: tests using apps run once per store."""
    if request.param == "memory":
        return "memory"
    server = request.getfixturevalue("redis_server")
    server.flush()
    return server.url


@pytest.fixture
def make_app(clock: FakeClock, store_url: str):
    """Build an app on the fake clock and the store under test; config names are the
    environment's, lower case and without the prefix (``stale_after_seconds=0.5``)."""

    def build(**config: object) -> Flask:
        # The fake clock jumps minutes between two sweeps, as if sweeps had run all along; with
        # the default 1 s interval each jump would be an outage (outage grace, API.md
        # § Lifecycle). Tests of outage grace give their own interval.
        settings: dict[str, object] = {
            "AGENT_REGISTRY_STORE": store_url,
            "AGENT_REGISTRY_SWEEP_INTERVAL_SECONDS": FAKE_CLOCK_SWEEP_INTERVAL,
        }
        settings.update({"AGENT_REGISTRY_" + key.upper(): value for key, value in config.items()})
        app = create_app(settings, clock=clock)
        app.testing = True
        _apps.append(app)
        return app

    return build


@pytest.fixture
def app(make_app) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runtime(app: Flask) -> Runtime:
    return app.extensions["agent_registry"]


def _running_greenlets() -> list[greenlet.greenlet]:
    return [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, greenlet.greenlet)
        and not isinstance(obj, Hub)  # gevent's event loop, made once per thread
        and obj is not greenlet.getcurrent()
        and obj.parent is not None
        and bool(obj)
        and not obj.dead
    ]


@pytest.fixture(autouse=True)
def no_leaked_streams_or_greenlets() -> Iterator[None]:
    """Fail a test that leaves event streams registered or greenlets running."""
    before = set(map(id, _running_greenlets()))
    yield
    apps = list(_apps)
    _apps.clear()
    for built in apps:
        hub = built.extensions["agent_registry"].hub
        assert len(hub) == 0, f"test left {len(hub)} event stream(s) registered"
    leaked = [g for g in _running_greenlets() if id(g) not in before]
    assert not leaked, f"test left greenlets running: {leaked}"


@pytest.fixture
def api(client: FlaskClient):
    from harness.api_actions import Api

    return Api(client)


@pytest.fixture
def start_server(tmp_path: Path):
    """Start real gunicorn + gevent servers; every one is stopped after the test."""
    started: list[GunicornServer] = []

    def start(env: dict[str, str] | None = None, workers: int = 1) -> GunicornServer:
        label = f"server-{len(started)}"
        server = GunicornServer("real", tmp_path, workers, env, label)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()

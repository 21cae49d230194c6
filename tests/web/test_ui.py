"""The dashboard's files (``web/ui.py``): served from the package, through the one request
pipeline, public, with security headers, and left out of the OpenAPI document."""

from __future__ import annotations

import logging

import pytest
from flask.testing import FlaskClient

from agent_registry import create_app
from agent_registry.web.fast_routes import FastRoutes
from agent_registry.web.ui import SECURITY_HEADERS, STATIC_DIR, load_assets
from tests.api.test_metrics_api import requests, scrape
from tests.secured import SECRET

SCRIPTS = sorted(path.name for path in STATIC_DIR.glob("*.js"))


@pytest.fixture
def client() -> FlaskClient:
    app = create_app({"AGENT_REGISTRY_ACCESS_LOG": "on"})
    app.testing = True
    return app.test_client()


def test_the_root_redirects_to_the_dashboard(client: FlaskClient) -> None:
    answer = client.get("/")

    assert answer.status_code == 302
    assert answer.headers["Location"] == "/ui/"


def test_the_page_comes_with_a_policy_that_runs_only_its_own_scripts(client: FlaskClient) -> None:
    answer = client.get("/ui/")

    assert answer.status_code == 200
    assert answer.mimetype == "text/html"
    policy = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert b'<script type="module" src="app.js">' in answer.data


@pytest.mark.parametrize("name", [*SCRIPTS, "style.css"])
def test_each_file_is_served_with_its_media_type_and_headers(
    client: FlaskClient, name: str
) -> None:
    answer = client.get(f"/ui/{name}")

    assert answer.status_code == 200
    assert answer.mimetype == ("text/css" if name.endswith(".css") else "text/javascript")
    assert answer.data == (STATIC_DIR / name).read_bytes()
    for header, value in SECURITY_HEADERS.items():
        assert answer.headers[header] == value


def test_a_reload_with_the_etag_is_a_304_without_a_body(client: FlaskClient) -> None:
    etag = client.get("/ui/app.js").headers["ETag"]

    again = client.get("/ui/app.js", headers={"If-None-Match": etag})

    assert again.status_code == 304
    assert again.data == b""


@pytest.mark.parametrize(
    "path", ["/ui/nothing.js", "/ui/..%2Fapp.js", "/ui/%2E%2E/setup.cfg", "/ui/sub/app.js"]
)
def test_only_the_files_of_the_directory_are_served(client: FlaskClient, path: str) -> None:
    answer = client.get(path)

    assert answer.status_code == 404
    assert answer.json["code"] == "NOT_FOUND"


def test_every_script_the_page_imports_is_served() -> None:
    assets = load_assets()
    for name in SCRIPTS:
        for line in assets[name].body.decode().splitlines():
            if line.startswith("import "):
                imported = line.rsplit('"./', 1)[1].split('"', 1)[0]
                assert imported in assets, f"{name} imports {imported}, which is not served"


def test_the_files_are_public_with_auth_on() -> None:
    app = create_app({"AGENT_REGISTRY_AUTH": "on", "AGENT_REGISTRY_TOKEN_SECRET": SECRET})

    client = app.test_client()

    assert client.get("/ui/").status_code == 200
    assert client.get("/ui/api.js").status_code == 200
    assert client.get("/api/v1/server").status_code == 401  # the data still needs a token


def test_dashboard_requests_pass_the_pipeline_hooks_with_their_route_templates(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agent_registry.access")

    for path in ("/", "/ui/", "/ui/app.js", "/ui/nothing.js"):
        client.get(path)

    routes = [
        (record.route, record.status)
        for record in caplog.records
        if record.name == "agent_registry.access"
    ]
    assert routes == [("/", 302), ("/ui/", 200), ("/ui/<name>", 200), ("/ui/<name>", 404)]
    counted = requests(scrape(client))
    assert counted[("/ui/<name>", "GET", "200")] == 1
    assert counted[("/ui/<name>", "GET", "404")] == 1


def test_the_dashboard_is_not_part_of_the_openapi_document(client: FlaskClient) -> None:
    paths = client.get("/api/v1/openapi.json").json["paths"]

    assert "/" not in paths
    assert not any(path.startswith("/ui") for path in paths)


def test_the_fast_views_stay_fast_beside_the_dashboard_routes() -> None:
    """``/ui/<name>`` is one plain segment: no rule a fast view's could overlap."""
    routes = FastRoutes(create_app().url_map, ["agents.heartbeat", "commands.acknowledge"])

    assert len(routes) == 2

"""API.md, Conventions: error shape, media type, body size, precedence, protocol version,
unknown fields and query parameters, and bodies that are not a JSON object."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient

from agent_registry.errors import StoreUnavailable
from harness.api_actions import Api
from tests.api import assert_error, padded

LIMIT = 2048  # MAX_BODY_BYTES for the apps built here (the smallest allowed is 1024)


@pytest.fixture
def command_id(api: Api) -> str:
    """agent-1 (group-a) is registered and has one PENDING command."""
    assert api.register().status_code == 201
    response = api.send("agent-1/commands")
    assert response.status_code == 202
    return response.json["commandId"]


@pytest.fixture
def small_client(make_app) -> FlaskClient:
    """An app with MAX_BODY_BYTES=2048 where agent-1 (group-a) is registered."""
    client = make_app(max_body_bytes=LIMIT).test_client()
    assert Api(client).register().status_code == 201
    return client


def _prepared_command(client: FlaskClient) -> str:
    response = Api(client).send("agent-1/commands")
    assert response.status_code == 202
    return response.json["commandId"]


# Every POST that carries a JSON body, with a valid body and the status it succeeds with.
BODY_POSTS = {
    "register": ("/api/v1/agents/register", {"id": "agent-2", "group": "group-a"}, 201),
    "send-agent": ("/api/v1/agents/agent-1/commands", {"type": "replay"}, 202),
    "send-group": ("/api/v1/agents/groups/group-a/commands", {"type": "replay"}, 202),
    "send-all": ("/api/v1/agents/commands", {"type": "replay"}, 202),
    "ack": ("/api/v1/agents/agent-1/commands/{command_id}/ack", {"status": "SUCCESS"}, 200),
}
BODY_POST_IDS = list(BODY_POSTS)


# --- the error shape ---------------------------------------------------------------


@dataclass
class Ctx:
    client: FlaskClient
    api: Api
    runtime: Any
    clock: Any
    monkeypatch: pytest.MonkeyPatch


@pytest.fixture
def ctx(client, api, runtime, clock, monkeypatch) -> Ctx:
    return Ctx(client, api, runtime, clock, monkeypatch)


def _sent(c: Ctx) -> str:
    assert c.api.register().status_code == 201
    return c.api.send("agent-1/commands").json["commandId"]


def _expired_ack(c: Ctx):
    command_id = _sent(c)
    c.clock.advance(61)
    return c.api.ack("agent-1", command_id)


def _conflicting_ack(c: Ctx):
    command_id = _sent(c)
    assert c.api.ack("agent-1", command_id).status_code == 200
    return c.api.ack("agent-1", command_id, status="FAILURE")


def _store_down(c: Ctx):
    def unavailable(*_args: object, **_kwargs: object) -> None:
        raise StoreUnavailable("The shared store cannot be reached.")

    c.monkeypatch.setattr(c.runtime.registry, "get", unavailable)
    return c.api.agent()


def _crash(c: Ctx):
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("secret-internal-detail")

    c.monkeypatch.setattr(c.runtime.registry, "get", broken)
    return c.api.agent()


ERROR_CASES: list[Any] = [
    pytest.param(
        lambda c: c.api.register("bad id"), 400, "VALIDATION_FAILED", {"id"}, id="validation"
    ),
    pytest.param(
        lambda c: c.client.post("/api/v1/agents/register", data="x", content_type="text/plain"),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        None,
        id="media-type",
    ),
    pytest.param(
        lambda c: c.api.register(name="n" * 70_000), 413, "PAYLOAD_TOO_LARGE", None, id="too-large"
    ),
    pytest.param(
        lambda c: c.client.get("/api/v1/agents", headers={"X-Protocol-Version": "2"}),
        400,
        "UNSUPPORTED_PROTOCOL_VERSION",
        None,
        id="protocol",
    ),
    pytest.param(
        lambda c: c.api.agent("ghost"), 404, "AGENT_NOT_FOUND", None, id="agent-not-found"
    ),
    pytest.param(
        lambda c: c.api.heartbeat("ghost"),
        404,
        "AGENT_NOT_REGISTERED",
        None,
        id="agent-not-registered",
    ),
    pytest.param(
        lambda c: c.api.send("commands"), 404, "NO_LIVE_TARGETS", None, id="no-live-targets"
    ),
    pytest.param(
        lambda c: c.client.get("/api/v1/commands/nope"),
        404,
        "COMMAND_NOT_FOUND",
        None,
        id="command-not-found",
    ),
    pytest.param(_expired_ack, 409, "COMMAND_EXPIRED", None, id="command-expired"),
    pytest.param(_conflicting_ack, 409, "ALREADY_ACKNOWLEDGED", None, id="already-acked"),
    pytest.param(lambda c: c.client.get("/api/v1/nope"), 404, "NOT_FOUND", None, id="unknown-url"),
    pytest.param(
        lambda c: c.client.put("/api/v1/agents/agent-1"),
        405,
        "METHOD_NOT_ALLOWED",
        None,
        id="method-not-allowed",
    ),
    pytest.param(_store_down, 503, "STORE_UNAVAILABLE", None, id="store-unavailable"),
    pytest.param(_crash, 500, "INTERNAL_ERROR", None, id="internal-error"),
]


@pytest.mark.parametrize(("make_request", "status", "code", "fields"), ERROR_CASES)
def test_every_error_has_the_documented_json_shape(
    ctx: Ctx, make_request: Callable[[Ctx], Any], status: int, code: str, fields: Any
) -> None:
    assert_error(make_request(ctx), status, code, fields)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nope",
        "/api/v1/agents/agent-1/nope",
        "/api/v1/agents/a/b/c/d",
        "/api/v2/agents",
        "/api",
        "/api/v1/commands",
    ],
)
def test_unknown_url_is_a_json_404(client: FlaskClient, path: str) -> None:
    assert_error(client.get(path, headers={"Accept": "text/html"}), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/v1/agents/agent-1", "GET"),
        ("GET", "/api/v1/commands/some-id/cancel", "POST"),
        ("PUT", "/api/v1/agents/register", "POST"),
        ("GET", "/api/v1/agents/agent-1/heartbeat", "POST"),
        ("POST", "/api/v1/agents", "GET"),
        ("PATCH", "/api/v1/commands/some-id", "GET"),
        ("GET", "/api/v1/agents/agent-1/commands/some-id/ack", "POST"),
        ("DELETE", "/api/v1/agents/groups/group-a/commands", "POST"),
    ],
)
def test_method_not_allowed_is_a_json_405_with_allow(
    client: FlaskClient, method: str, path: str, allowed: str
) -> None:
    response = client.open(path, method=method)
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    allow = {part.strip() for part in response.headers.get("Allow", "").split(",")}
    assert allowed in allow
    assert method not in allow


@pytest.mark.parametrize(
    ("endpoint", "part", "patched"),
    [
        ("get", "registry", "get"),
        ("list", "registry", "pages"),
        ("heartbeat", "registry", "heartbeat"),
        ("send-agent", "commands", "send"),
        ("ack", "commands", "acknowledge_command"),
        ("ack-with-body", "commands", "acknowledge_command"),
        ("command", "commands", "get"),
    ],
)
def test_unhandled_exception_is_a_json_500_without_details(
    client: FlaskClient,
    runtime,
    command_id: str,
    monkeypatch,
    endpoint: str,
    part: str,
    patched: str,
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("secret-internal-detail in /srv/agent_registry/core.py")

    monkeypatch.setattr(getattr(runtime, part), patched, broken)
    ack = f"/api/v1/agents/agent-1/commands/{command_id}/ack"
    response = {
        "get": lambda: client.get("/api/v1/agents/agent-1"),
        "list": lambda: client.get("/api/v1/agents"),
        "heartbeat": lambda: client.post("/api/v1/agents/agent-1/heartbeat"),
        "send-agent": lambda: client.post(
            "/api/v1/agents/agent-1/commands", json={"type": "replay"}
        ),
        "ack": lambda: client.post(ack),
        "ack-with-body": lambda: client.post(ack, json={"status": "failure", "message": "m"}),
        "command": lambda: client.get(f"/api/v1/commands/{command_id}"),
    }[endpoint]()
    assert_error(response, 500, "INTERNAL_ERROR")
    text = response.get_data(as_text=True)
    for leak in ("secret-internal-detail", "RuntimeError", "core.py", "Traceback", "<html"):
        assert leak not in text


# --- media type ------------------------------------------------------------------------


def _non_json(kind: str, document: dict[str, Any]) -> dict[str, Any]:
    """Request keyword arguments sending ``document`` as something other than JSON."""
    raw = json.dumps(document)
    if kind == "text/plain":
        return {"data": raw, "content_type": "text/plain"}
    if kind == "no-content-type":
        return {"data": raw.encode()}
    if kind == "form":
        return {"data": {key: str(value) for key, value in document.items()}}
    if kind == "multipart":
        return {"data": {"body": (io.BytesIO(raw.encode()), "body.json")}}
    if kind == "json-lookalike":
        return {"data": raw, "content_type": "application/jsonp"}
    if kind == "chunked-text":  # as gunicorn hands a chunked request over
        return {
            "input_stream": io.BytesIO(raw.encode()),
            "headers": {"Content-Type": "text/plain", "Transfer-Encoding": "chunked"},
            "environ_overrides": {"wsgi.input_terminated": True},
        }
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    ["text/plain", "no-content-type", "form", "multipart", "json-lookalike", "chunked-text"],
)
@pytest.mark.parametrize("endpoint", BODY_POST_IDS)
def test_post_with_a_body_that_is_not_json_is_415(
    client: FlaskClient, command_id: str, endpoint: str, kind: str
) -> None:
    path, document, _ = BODY_POSTS[endpoint]
    response = client.post(path.format(command_id=command_id), **_non_json(kind, document))
    body = assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert "application/json" in body["message"]


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "application/json;charset=UTF-8"],
)
@pytest.mark.parametrize("endpoint", BODY_POST_IDS)
def test_json_content_type_with_parameters_is_accepted(
    client: FlaskClient, command_id: str, endpoint: str, content_type: str
) -> None:
    path, document, status = BODY_POSTS[endpoint]
    response = client.post(
        path.format(command_id=command_id), data=json.dumps(document), content_type=content_type
    )
    assert response.status_code == status, response.get_data(as_text=True)


@pytest.mark.parametrize(
    "kind", ["text/plain", "no-content-type", "form", "multipart", "chunked-text"]
)
def test_heartbeat_is_exempt_from_the_media_type_rule(
    client: FlaskClient, api: Api, kind: str
) -> None:
    assert api.register().status_code == 201
    response = client.post("/api/v1/agents/agent-1/heartbeat", **_non_json(kind, {"x": 1}))
    assert response.status_code == 204


@pytest.mark.parametrize(
    "request_kwargs",
    [
        pytest.param({}, id="no-body-no-type"),
        pytest.param({"content_type": "application/json"}, id="json-type-empty-body"),
    ],
)
def test_ack_without_a_body_is_accepted(
    client: FlaskClient, command_id: str, request_kwargs: dict[str, Any]
) -> None:
    response = client.post(f"/api/v1/agents/agent-1/commands/{command_id}/ack", **request_kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["status"] == "ACKNOWLEDGED"


# --- body size -------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", BODY_POST_IDS)
def test_body_over_max_body_bytes_is_413(small_client: FlaskClient, endpoint: str) -> None:
    command_id = _prepared_command(small_client)
    path, document, _ = BODY_POSTS[endpoint]
    response = small_client.post(
        path.format(command_id=command_id),
        data=padded(document, LIMIT + 1),
        content_type="application/json",
    )
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


@pytest.mark.parametrize("endpoint", BODY_POST_IDS)
def test_body_of_exactly_max_body_bytes_is_accepted(
    small_client: FlaskClient, endpoint: str
) -> None:
    command_id = _prepared_command(small_client)
    path, document, status = BODY_POSTS[endpoint]
    response = small_client.post(
        path.format(command_id=command_id),
        data=padded(document, LIMIT),
        content_type="application/json",
    )
    assert response.status_code == status, response.get_data(as_text=True)


def _chunked(client: FlaskClient, path: str, body: bytes, content_type: str = "application/json"):
    """POST ``body`` with no Content-Length, as gunicorn hands a chunked request to the app
    (it de-chunks the body and sets ``wsgi.input_terminated``)."""
    return client.post(
        path,
        input_stream=io.BytesIO(body),
        headers={"Content-Type": content_type, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_chunked_body_within_the_limit_is_read(small_client: FlaskClient) -> None:
    body = padded({"id": "agent-2", "group": "group-a"}, LIMIT)
    response = _chunked(small_client, "/api/v1/agents/register", body)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.json["agentId"] == "agent-2"


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({"id": "agent-2", "group": "group-a"}, id="valid-json-padded"),
        pytest.param(
            {"id": "agent-2", "group": "group-a", "name": "n" * 250, "routeIds": ["r" * 200] * 10},
            id="large-fields",
        ),
    ],
)
def test_chunked_body_over_the_limit_is_413(
    small_client: FlaskClient, document: dict[str, Any]
) -> None:
    response = _chunked(small_client, "/api/v1/agents/register", padded(document, 2 * LIMIT))
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert Api(small_client).agent("agent-2").status_code == 404


# --- precedence: protocol version, media type, size, validation, existence -----------

V2 = {"X-Protocol-Version": "2"}
BIG = {"id": "agent-2", "group": "group-a", "name": "n" * (LIMIT + 100)}
BIG_INVALID = {"id": "bad id", "group": "bad group", "name": "n" * (LIMIT + 100)}
BIG_COMMAND = {"type": "replay", "payload": {"blob": "x" * (LIMIT + 100)}}
BIG_BAD_COMMAND = {"type": "nope", "payload": {"blob": "x" * (LIMIT + 100)}}


def _json(document: Any) -> dict[str, Any]:
    return {"data": json.dumps(document), "content_type": "application/json"}


def _text(document: Any) -> dict[str, Any]:
    return {"data": json.dumps(document), "content_type": "text/plain"}


PRECEDENCE = [
    # protocol version beats everything
    pytest.param(
        "/api/v1/agents/register",
        {"headers": V2, **_text({"id": "a"})},
        400,
        "UNSUPPORTED_PROTOCOL_VERSION",
        id="version>media",
    ),
    pytest.param(
        "/api/v1/agents/register",
        {"headers": V2, **_json(BIG)},
        400,
        "UNSUPPORTED_PROTOCOL_VERSION",
        id="version>size",
    ),
    pytest.param(
        "/api/v1/agents/register",
        {"headers": V2, **_json({"id": "bad id"})},
        400,
        "UNSUPPORTED_PROTOCOL_VERSION",
        id="version>validation",
    ),
    pytest.param(
        "/api/v1/agents/ghost/heartbeat",
        {"headers": V2},
        400,
        "UNSUPPORTED_PROTOCOL_VERSION",
        id="version>existence-heartbeat",
    ),
    pytest.param(
        "/api/v1/agents/ghost/commands",
        {"headers": V2, **_json({"type": "replay"})},
        400,
        "UNSUPPORTED_PROTOCOL_VERSION",
        id="version>existence-send",
    ),
    # then media type
    pytest.param(
        "/api/v1/agents/register", _text(BIG), 415, "UNSUPPORTED_MEDIA_TYPE", id="media>size"
    ),
    pytest.param(
        "/api/v1/agents/agent-1/commands",
        _text({"type": "nope"}),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        id="media>validation",
    ),
    pytest.param(
        "/api/v1/agents/ghost/commands",
        _text({"type": "replay"}),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        id="media>existence",
    ),
    pytest.param(
        "/api/v1/agents/ghost/commands/nope/ack",
        _text({"status": "SUCCESS"}),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        id="media>existence-ack",
    ),
    # then size
    pytest.param(
        "/api/v1/agents/register",
        _json(BIG_INVALID),
        413,
        "PAYLOAD_TOO_LARGE",
        id="size>validation",
    ),
    pytest.param(
        "/api/v1/agents/agent-1/commands",
        _json(BIG_BAD_COMMAND),
        413,
        "PAYLOAD_TOO_LARGE",
        id="size>validation-send",
    ),
    pytest.param(
        "/api/v1/agents/ghost/commands",
        _json(BIG_COMMAND),
        413,
        "PAYLOAD_TOO_LARGE",
        id="size>existence",
    ),
    pytest.param(
        "/api/v1/agents/ghost/commands/nope/ack",
        _json({"message": "m" * (LIMIT + 100)}),
        413,
        "PAYLOAD_TOO_LARGE",
        id="size>existence-ack",
    ),
    # then validation, existence last
    pytest.param(
        "/api/v1/agents/ghost/commands",
        _json({"type": "nope"}),
        400,
        "VALIDATION_FAILED",
        id="validation>existence-agent",
    ),
    pytest.param(
        "/api/v1/agents/groups/empty/commands",
        _json({"type": "replay", "payload": []}),
        400,
        "VALIDATION_FAILED",
        id="validation>existence-group",
    ),
    pytest.param(
        "/api/v1/agents/ghost/commands/nope/ack",
        _json({"status": "MAYBE"}),
        400,
        "VALIDATION_FAILED",
        id="validation>existence-ack-agent",
    ),
    pytest.param(
        "/api/v1/agents/agent-1/commands/nope/ack",
        _json({"details": []}),
        400,
        "VALIDATION_FAILED",
        id="validation>existence-ack-command",
    ),
]


@pytest.mark.parametrize(("path", "request_kwargs", "status", "code"), PRECEDENCE)
def test_the_first_broken_rule_answers(
    small_client: FlaskClient, path: str, request_kwargs: dict[str, Any], status: int, code: str
) -> None:
    response = small_client.post(path, **request_kwargs)
    assert_error(response, status, code, ...)


def test_send_to_everyone_validates_before_looking_for_targets(client: FlaskClient) -> None:
    response = client.post("/api/v1/agents/commands", json={"type": "nope"})
    assert_error(response, 400, "VALIDATION_FAILED", {"type"})


def test_agent_commands_query_is_validated_before_the_agent_is_looked_up(
    client: FlaskClient,
) -> None:
    response = client.get("/api/v1/agents/ghost/commands?status=bogus")
    assert_error(response, 400, "VALIDATION_FAILED", {"status"})


def test_chunked_body_checks_media_type_before_size(small_client: FlaskClient) -> None:
    body = padded({"id": "agent-2", "group": "group-a"}, 2 * LIMIT)
    response = _chunked(small_client, "/api/v1/agents/register", body, "text/plain")
    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")


# --- protocol version -------------------------------------------------------------------

# A valid request to every endpoint under /api/v1/agents (the event stream aside).
AGENT_REQUESTS = {
    "register": ("POST", "/api/v1/agents/register", {"id": "agent-2", "group": "group-a"}, 201),
    "heartbeat": ("POST", "/api/v1/agents/agent-1/heartbeat", None, 204),
    "list": ("GET", "/api/v1/agents", None, 200),
    "get": ("GET", "/api/v1/agents/agent-1", None, 200),
    "deliveries": ("GET", "/api/v1/agents/agent-1/commands", None, 200),
    "send-agent": ("POST", "/api/v1/agents/agent-1/commands", {"type": "replay"}, 202),
    "send-group": ("POST", "/api/v1/agents/groups/group-a/commands", {"type": "replay"}, 202),
    "send-all": ("POST", "/api/v1/agents/commands", {"type": "replay"}, 202),
    "ack": ("POST", "/api/v1/agents/agent-1/commands/{command_id}/ack", {}, 200),
}


def _call(client: FlaskClient, name: str, command_id: str, **kwargs: Any):
    requests = {**AGENT_REQUESTS, "command": ("GET", "/api/v1/commands/{command_id}", None, 200)}
    method, path, document, _ = requests[name]
    if document is not None:
        kwargs["json"] = document
    return client.open(path.format(command_id=command_id), method=method, **kwargs)


@pytest.mark.parametrize("version", [None, "1"])
@pytest.mark.parametrize("endpoint", list(AGENT_REQUESTS))
def test_protocol_version_absent_or_1_is_accepted(
    client: FlaskClient, command_id: str, endpoint: str, version: str | None
) -> None:
    headers = {} if version is None else {"X-Protocol-Version": version}
    response = _call(client, endpoint, command_id, headers=headers)
    assert response.status_code == AGENT_REQUESTS[endpoint][3], response.get_data(as_text=True)


@pytest.mark.parametrize("version", ["2", "0", "v1", "1.1"])
@pytest.mark.parametrize("endpoint", list(AGENT_REQUESTS))
def test_other_protocol_versions_are_rejected_naming_the_supported_ones(
    client: FlaskClient, api: Api, command_id: str, endpoint: str, version: str
) -> None:
    before = api.agent().json
    response = _call(client, endpoint, command_id, headers={"X-Protocol-Version": version})
    body = assert_error(response, 400, "UNSUPPORTED_PROTOCOL_VERSION")
    assert "1" in body["message"].replace(version, "")
    assert "support" in body["message"].lower()
    assert api.agent().json == before
    assert api.agent("agent-2").status_code == 404
    deliveries = client.get("/api/v1/agents/agent-1/commands").json
    assert [(d["commandId"], d["status"]) for d in deliveries] == [(command_id, "PENDING")]


# --- unknown query parameters and JSON fields ---------------------------------------------


@pytest.mark.parametrize("endpoint", [*AGENT_REQUESTS, "command"])
def test_unknown_query_parameter_is_rejected_by_name(
    client: FlaskClient, command_id: str, endpoint: str
) -> None:
    response = _call(client, endpoint, command_id, query_string={"bogus": "1"})
    assert_error(response, 400, "VALIDATION_FAILED", {"bogus"})


@pytest.mark.parametrize(
    ("endpoint", "document"),
    [
        ("register", {"id": "agent-2", "group": "group-a", "bogus": 1, "route_ids": []}),
        ("send-agent", {"type": "replay", "bogus": 1, "target": "x"}),
        ("send-group", {"type": "replay", "bogus": 1, "target": "x"}),
        ("send-all", {"type": "replay", "bogus": 1, "target": "x"}),
        ("ack", {"status": "SUCCESS", "bogus": 1, "agentId": "agent-1"}),
    ],
)
def test_unknown_json_fields_are_rejected_by_name(
    client: FlaskClient, command_id: str, endpoint: str, document: dict[str, Any]
) -> None:
    path = BODY_POSTS[endpoint][0].format(command_id=command_id)
    response = client.post(path, json=document)
    known = set(BODY_POSTS[endpoint][1])
    assert_error(response, 400, "VALIDATION_FAILED", set(document) - known)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"{", id="truncated"),
        pytest.param(b"not json", id="garbage"),
        pytest.param(b'{"id": "agent-2",}', id="trailing-comma"),
        pytest.param(b'[{"id": "agent-2", "group": "group-a"}]', id="array"),
        pytest.param(b'"agent-2"', id="string"),
        pytest.param(b"42", id="number"),
        pytest.param(b"null", id="null"),
        pytest.param(b'{"id": "\xff\xfe"}', id="not-utf8"),
    ],
)
@pytest.mark.parametrize("endpoint", BODY_POST_IDS)
def test_body_that_is_not_a_json_object_is_400(
    client: FlaskClient, api: Api, command_id: str, endpoint: str, raw: bytes
) -> None:
    path = BODY_POSTS[endpoint][0].format(command_id=command_id)
    response = client.post(path, data=raw, content_type="application/json")
    assert_error(response, 400, "VALIDATION_FAILED", ...)
    assert client.get(f"/api/v1/commands/{command_id}").json["deliveries"][0]["status"] == "PENDING"
    assert api.agent("agent-2").status_code == 404


# Where each body takes free-form JSON: a non-JSON constant must not sneak in there.
FREE_FORM = {
    "register": "capabilities",
    "send-agent": "payload",
    "send-group": "payload",
    "send-all": "payload",
    "ack": "details",
}


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("endpoint", BODY_POST_IDS)
def test_non_json_number_constants_are_rejected(
    client: FlaskClient, api: Api, command_id: str, endpoint: str, constant: str
) -> None:
    path, document, _ = BODY_POSTS[endpoint]
    raw = json.dumps({**document, FREE_FORM[endpoint]: {"x": "CONSTANT"}})
    raw = raw.replace('"CONSTANT"', constant)
    response = client.post(
        path.format(command_id=command_id), data=raw, content_type="application/json"
    )
    assert_error(response, 400, "VALIDATION_FAILED", ...)
    assert api.agent("agent-2").status_code == 404
    deliveries = client.get("/api/v1/agents/agent-1/commands").json
    assert [(d["commandId"], d["status"]) for d in deliveries] == [(command_id, "PENDING")]


def test_validation_failure_names_every_wrong_field_with_dotted_paths(api: Api) -> None:
    response = api.register(
        "bad id",
        "",
        version="v" * 65,
        routeIds=["ok", "ok", 7, "r" * 257, None],
        capabilities=["not", "an", "object"],
        name="n" * 257,
        extra=True,
    )
    assert_error(
        response,
        400,
        "VALIDATION_FAILED",
        {
            "id",
            "group",
            "version",
            "routeIds.2",
            "routeIds.3",
            "routeIds.4",
            "capabilities",
            "name",
            "extra",
        },
    )


# --- rules added after review -------------------------------------------------------------


def test_a_heartbeat_body_over_the_limit_is_413_though_its_media_type_is_free(
    small_client: FlaskClient,
) -> None:
    """The heartbeat is exempt from the media-type rule only; the size rule still holds."""
    over = small_client.post("/api/v1/agents/agent-1/heartbeat", data="x" * (LIMIT + 1))
    assert_error(over, 413, "PAYLOAD_TOO_LARGE")
    within = small_client.post(
        "/api/v1/agents/agent-1/heartbeat", data="x" * 10, content_type="text/plain"
    )
    assert within.status_code == 204


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/agents?status=LIVE&status=DEAD",
        "/api/v1/agents/agent-1/commands?status=PENDING&status=FAILED",
    ],
)
def test_a_repeated_query_parameter_is_400_not_silently_dropped(api: Api, path: str) -> None:
    assert api.register().status_code == 201
    assert_error(api.client.get(path), 400, "VALIDATION_FAILED", {"status"})


def test_an_unknown_query_parameter_is_validation_so_media_type_answers_first(
    api: Api,
) -> None:
    response = api.client.post(
        "/api/v1/agents/register?x=1", data="id=a", content_type="text/plain"
    )
    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_a_chunked_heartbeat_body_over_the_limit_is_413(small_client: FlaskClient) -> None:
    response = _chunked(small_client, "/api/v1/agents/agent-1/heartbeat", b"x" * (LIMIT + 1))
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    within = _chunked(small_client, "/api/v1/agents/agent-1/heartbeat", b"x" * 10)
    assert within.status_code == 204

"""Reading requests: the checks every request gets, JSON bodies, schema loading.

The checks run in the order API.md fixes when a request breaks several rules: protocol
version, media type, size; validation happens in the view, existence last.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, current_app, request
from marshmallow import Schema, ValidationError

from ..errors import (
    PayloadTooLarge,
    UnsupportedMediaType,
    UnsupportedProtocolVersion,
    ValidationFailed,
)
from ..server.runtime import Runtime

PROTOCOL_HEADER = "X-Protocol-Version"
SUPPORTED_PROTOCOL_VERSIONS = ("1",)
AGENTS_PREFIX = "/api/v1/agents"

# Endpoints whose POST needs no JSON body: the heartbeat reads none, an ack may omit it.
_BODY_EXEMPT = frozenset({"agents.heartbeat"})
_BODY_OPTIONAL = frozenset({"commands.acknowledge"})
# Endpoints that read a query string (through a schema, which names unknown parameters).
_QUERY_ENDPOINTS = frozenset({"agents.list_agents", "commands.agent_deliveries"})


def init_app(app: Flask) -> None:
    app.before_request(check_request)
    app.after_request(add_protocol_header)


def runtime() -> Runtime:
    return current_app.extensions["agent_registry"]


def check_request() -> None:
    if request.path.startswith(AGENTS_PREFIX):
        version = request.headers.get(PROTOCOL_HEADER)
        if version is not None and version.strip() not in SUPPORTED_PROTOCOL_VERSIONS:
            raise UnsupportedProtocolVersion(
                f"{PROTOCOL_HEADER} '{version}' is not supported; supported versions: "
                f"{', '.join(SUPPORTED_PROTOCOL_VERSIONS)}."
            )
    if request.endpoint is None:
        return
    if request.method == "POST":
        _check_body_envelope(request.endpoint)
    # Validation comes after media type and size; unknown query parameters are part of it.
    if request.args and request.endpoint not in _QUERY_ENDPOINTS:
        names = ", ".join(sorted(request.args))
        raise ValidationFailed(
            f"Unknown query parameter(s): {names}.",
            {name: ["Unknown field."] for name in request.args},
        )


def _check_body_envelope(endpoint: str) -> None:
    """Media type, then size (before anything reads the body)."""
    media_type_applies = endpoint not in _BODY_EXEMPT and (
        endpoint not in _BODY_OPTIONAL or _has_body()
    )
    if media_type_applies and request.mimetype != "application/json":
        got = request.headers.get("Content-Type") or "none"
        raise UnsupportedMediaType(f"Content-Type must be application/json (got {got}).")
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes.")
    if endpoint in _BODY_EXEMPT and _has_body():
        _read_body()  # never used, but a chunked one over the limit is still refused


def _has_body() -> bool:
    if request.content_length:
        return True
    return "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def add_protocol_header(response: Response) -> Response:
    if request.path.startswith(AGENTS_PREFIX):
        response.headers[PROTOCOL_HEADER] = SUPPORTED_PROTOCOL_VERSIONS[-1]
    return response


def json_body(*, optional: bool = False) -> dict[str, Any]:
    """The body as a JSON object; an optional body may be empty ({})."""
    raw = _read_body()
    if not raw.strip():
        if optional:
            return {}
        raise ValidationFailed("A JSON object is required as the request body.")
    try:
        value = json.loads(raw, parse_constant=reject_json_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(value, dict):
        raise ValidationFailed("The request body must be a JSON object.")
    return value


def _read_body() -> bytes:
    """The body, refusing one over the limit also when it is chunked (no Content-Length),
    which the framework would otherwise cut off silently at the limit."""
    if request.content_length is not None:
        return request.get_data(cache=True)
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    raw = request.environ["wsgi.input"].read(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes.")
    return raw


def reject_json_constant(name: str) -> None:
    """NaN and Infinity are not JSON (RFC 8259); the Java agents' parsers reject them."""
    raise ValueError(f"{name} is not a JSON value")


def load(schema: Schema, data: Mapping[str, Any], what: str = "request body") -> dict[str, Any]:
    """Validate with marshmallow; every wrong field is named at once, dotted paths."""
    try:
        return schema.load(data)
    except ValidationError as exc:
        errors = flatten_messages(exc.messages)
        raise ValidationFailed(
            f"The {what} is invalid: {', '.join(sorted(errors))}.", errors
        ) from None


def load_query(schema: Schema) -> dict[str, Any]:
    repeated = sorted(name for name, values in request.args.lists() if len(values) > 1)
    if repeated:
        raise ValidationFailed(
            f"Query parameter(s) given more than once: {', '.join(repeated)}; "
            "give several values comma-separated instead.",
            {name: ["Given more than once."] for name in repeated},
        )
    return load(schema, request.args.to_dict(flat=True), "query string")


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """``{"routeIds": {3: ["..."]}}`` -> ``{"routeIds.3": ["..."]}``."""
    if isinstance(messages, Mapping):
        flat: dict[str, list[str]] = {}
        for key, value in messages.items():
            flat.update(flatten_messages(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(messages, list | tuple):
        return {prefix or "_schema": [str(message) for message in messages]}
    return {prefix or "_schema": [str(messages)]}

"""The rules every request is checked against, on the WSGI environ alone.

One set of functions for every request, fast path or Flask: the pipeline runs them before
any view. They run in the order API.md fixes for a request that breaks several rules:
protocol version, media type, size, then validation (query string, then body); existence
is the view's business, last.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from marshmallow import Schema, ValidationError
from werkzeug.sansio.utils import host_is_trusted

from ..errors import (
    BadRequest,
    PathNotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    UnsupportedProtocolVersion,
    ValidationFailed,
)
from .declare import BodyRule, ViewSpec
from .json_body import BodyRefused, parse_body

PROTOCOL_HEADER = "X-Protocol-Version"
SUPPORTED_PROTOCOL_VERSIONS = ("1",)
AGENTS_PREFIX = "/api/v1/agents"

Environ = dict[str, Any]


def check_host(environ: Environ) -> None:
    """A ``Host`` (or a trusted proxy's forwarded host, which ProxyFix put there) that
    cannot be a URL's host is a request that cannot be parsed: 400, before anything else.
    werkzeug builds ``sseEndpoint`` from it and would leave such a host out
    (``http:///api/...``); its own rule decides: a name or IPv4 address of
    ``A-Z a-z 0-9 . -``, or an IPv6 literal in brackets, then an optional port 1-65535.
    Two ``Host`` headers arrive joined by a comma, so they are refused too. A request
    without one (HTTP/1.0) falls back to the server's own name."""
    host = environ.get("HTTP_HOST")
    if host is not None and not host_is_trusted(host):
        raise BadRequest(f"The Host header {host[:100]!r} is not a valid host[:port].")


def check_path(environ: Environ) -> None:
    """Each path segment is one identifier: an encoded ``/`` (``%2F``) inside one is not a
    separator, and no route takes a ``/`` inside a segment, so such a path has no route.
    The server decodes ``%2F`` in ``PATH_INFO``; the raw target (``RAW_URI``, or
    ``REQUEST_URI``) still shows the segments as the client sent them."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw and "%" in raw and "%2f" in raw.partition("?")[0].lower():
        raise PathNotFound(
            "No such resource: an encoded '/' (%2F) cannot be part of a path segment."
        )


def check_protocol(environ: Environ) -> None:
    """Requests under /api/v1/agents may name a protocol version; only 1 is spoken."""
    version = environ.get("HTTP_X_PROTOCOL_VERSION")
    if version is None or not environ["PATH_INFO"].startswith(AGENTS_PREFIX):
        return
    if version.strip() not in SUPPORTED_PROTOCOL_VERSIONS:
        raise UnsupportedProtocolVersion(
            f"{PROTOCOL_HEADER} '{version}' is not supported; supported versions: "
            f"{', '.join(SUPPORTED_PROTOCOL_VERSIONS)}."
        )


def read_body(environ: Environ, rule: BodyRule, limit: int) -> bytes:
    """Media type, then size, then the bytes of a POST body (b"" when there is none).

    A chunked body has no Content-Length: it is read up to one byte past the limit, so one
    over the limit is refused instead of silently cut off. A body the view does not read
    (the heartbeat's) is still read, so that the size rule holds for it too.
    """
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    length = None if chunked else _content_length(environ)
    has_body = chunked or bool(length)
    if rule is BodyRule.REQUIRED or (rule is BodyRule.OPTIONAL and has_body):
        media_type = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
        if media_type != "application/json":
            got = environ.get("CONTENT_TYPE") or "none"
            raise UnsupportedMediaType(f"Content-Type must be application/json (got {got}).")
    if length is not None and length > limit:
        raise _too_large(limit)
    if not has_body:
        return b""
    stream = environ["wsgi.input"]
    try:
        if length is not None:
            return bytes(stream.read(length))
        raw = bytes(stream.read(limit + 1))
    except OSError as exc:  # a malformed chunked body (the server says so) or a lost client
        raise BadRequest(f"The request body cannot be read: {exc}.") from None
    if len(raw) > limit:
        raise _too_large(limit)
    return raw


def _content_length(environ: Environ) -> int | None:
    raw = environ.get("CONTENT_LENGTH", "")
    return int(raw) if raw.isdigit() else None  # as werkzeug reads it: digits only


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes.")


def load_query(environ: Environ, spec: ViewSpec | None) -> dict[str, Any]:
    """The query string through the view's declared schema; no schema means no parameters."""
    query = environ.get("QUERY_STRING")
    pairs = parse_qsl(query, keep_blank_values=True) if query else []
    schema = spec.query if spec is not None else None
    if schema is None:
        if pairs:
            names = sorted({name for name, _ in pairs})
            raise ValidationFailed(
                f"Unknown query parameter(s): {', '.join(names)}.",
                {name: ["Unknown field."] for name in names},
            )
        return {}
    values: dict[str, str] = {}
    repeated: set[str] = set()
    for name, value in pairs:
        if name in values:
            repeated.add(name)
        values[name] = value
    if repeated:
        raise ValidationFailed(
            f"Query parameter(s) given more than once: {', '.join(sorted(repeated))}; "
            "give several values comma-separated instead.",
            {name: ["Given more than once."] for name in sorted(repeated)},
        )
    return load(schema, values, "query string")


def load_body(raw: bytes, spec: ViewSpec) -> dict[str, Any]:
    """The body as a JSON object through the view's schema; an optional body may be empty."""
    assert spec.body is not None
    if not raw.strip():
        if spec.body_rule is BodyRule.OPTIONAL:
            return _defaults(spec.body)
        raise ValidationFailed("A JSON object is required as the request body.")
    try:
        value = parse_body(raw)
    except BodyRefused as exc:
        raise ValidationFailed(str(exc)) from None
    if not isinstance(value, dict):
        raise ValidationFailed("The request body must be a JSON object.")
    return load(spec.body, value)


def _defaults(schema: Schema) -> dict[str, Any]:
    """What an empty body means: the schema's defaults, worked out once per schema (an empty
    ack is most acks, and a schema pass costs more than the ack itself), fresh containers
    each time so no two requests share one."""
    defaults = _DEFAULTS.get(schema)
    if defaults is None:
        defaults = _DEFAULTS[schema] = load(schema, {})
    return {key: copy.copy(value) for key, value in defaults.items()}


_DEFAULTS: dict[Schema, dict[str, Any]] = {}


def load(schema: Schema, data: Mapping[str, Any], what: str = "request body") -> dict[str, Any]:
    """Validate with marshmallow; every wrong field is named at once, dotted paths."""
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        errors = flatten_messages(exc.messages)
        raise ValidationFailed(
            f"The {what} is invalid: {', '.join(sorted(errors))}.", errors
        ) from None
    return loaded


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

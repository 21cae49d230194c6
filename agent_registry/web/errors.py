"""The one place where failures become HTTP: every status >= 400 is the JSON error shape.

Domain errors are mapped to their status and code by the table below; the framework's own
HTTP errors (404, 405, 413, 415, ...) are mapped by status; anything else is a logged 500
with no details.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from .. import errors as domain
from ..errors import AuthRefused, RegistryError

log = logging.getLogger(__name__)

# Each domain error's status and stable code (API.md, Conventions).
_DOMAIN_ERRORS: dict[type[RegistryError], tuple[int, str]] = {
    domain.ValidationFailed: (400, "VALIDATION_FAILED"),
    domain.UnsupportedProtocolVersion: (400, "UNSUPPORTED_PROTOCOL_VERSION"),
    # Refused by the HTTP layer (the worker's handler) or the pipeline's first check.
    domain.BadRequest: (400, "BAD_REQUEST"),
    domain.UriTooLong: (414, "URI_TOO_LONG"),
    domain.HeadersTooLarge: (431, "HEADERS_TOO_LARGE"),
    domain.PathNotFound: (404, "NOT_FOUND"),
    domain.AgentNotFound: (404, "AGENT_NOT_FOUND"),
    domain.AgentNotRegistered: (404, "AGENT_NOT_REGISTERED"),
    domain.NoLiveTargets: (404, "NO_LIVE_TARGETS"),
    domain.CommandNotFound: (404, "COMMAND_NOT_FOUND"),
    domain.CommandExpired: (409, "COMMAND_EXPIRED"),
    domain.AlreadyAcknowledged: (409, "ALREADY_ACKNOWLEDGED"),
    domain.CommandCancelled: (409, "COMMAND_CANCELLED"),
    domain.PayloadTooLarge: (413, "PAYLOAD_TOO_LARGE"),
    domain.UnsupportedMediaType: (415, "UNSUPPORTED_MEDIA_TYPE"),
    domain.StoreUnavailable: (503, "STORE_UNAVAILABLE"),
    domain.Unauthenticated: (401, "UNAUTHENTICATED"),
    domain.TokenExpired: (401, "TOKEN_EXPIRED"),
    domain.Forbidden: (403, "FORBIDDEN"),
    domain.NotAvailable: (404, "NOT_FOUND"),
}

# Where a refused request's reason is left for the metrics (auth_failures_total{reason}).
REFUSAL_KEY = "agent_registry.refusal"

# The framework's own errors: routing (404, 405) and a request it cannot parse (400). Body
# size and media type are the pipeline's checks (domain errors above), never werkzeug's.
_CODES_BY_STATUS = {
    400: "VALIDATION_FAILED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
}

_MESSAGES_BY_STATUS = {
    404: "No such resource; the API lives under /api/v1.",
    405: "This method is not allowed on this resource.",
}


def init_app(app: Flask) -> None:
    app.register_error_handler(Exception, handle_error)


def error_payload(
    exc: Exception, environ: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Any failure as (status, JSON error body, extra headers): the one mapping.

    A refusal by the guard or a token check is noted in ``environ`` (``REFUSAL_KEY``: its
    reason), where the metrics hook counts it.
    """
    headers: dict[str, str] = {}
    errors = None
    if isinstance(exc, RegistryError):
        status, code = _domain_status(exc)
        message, errors = exc.message, exc.errors
        if isinstance(exc, AuthRefused) and environ is not None:
            environ[REFUSAL_KEY] = exc.reason
        if isinstance(exc, domain.Unauthenticated):
            headers["WWW-Authenticate"] = _challenge(exc)
    elif isinstance(exc, HTTPException):
        status = exc.code or 500
        # Any other framework 4xx is a request the server cannot take as sent.
        fallback = "INTERNAL_ERROR" if status >= 500 else "VALIDATION_FAILED"
        code = _CODES_BY_STATUS.get(status, fallback)
        message = _MESSAGES_BY_STATUS.get(status) or exc.description or HTTPStatus(status).phrase
        allow = dict(exc.get_headers()).get("Allow")
        if allow:
            headers["Allow"] = allow
    else:
        log.exception("unhandled error: %s", exc)
        status, code = 500, "INTERNAL_ERROR"
        message = "The server failed to handle the request; the error was logged."
    body: dict[str, Any] = {
        "status": status,
        "error": HTTPStatus(status).phrase,
        "code": code,
        "message": message,
    }
    if errors:
        body["errors"] = errors
    return status, body, headers


def _challenge(exc: domain.Unauthenticated) -> str:
    """RFC 6750: a bare challenge when no token came, else why the token failed."""
    if exc.reason in ("missing", "malformed"):
        return "Bearer"
    description = "".join(c for c in exc.message if " " <= c <= "~" and c not in '"\\')
    return f'Bearer error="invalid_token", error_description="{description}"'


def _domain_status(exc: RegistryError) -> tuple[int, str]:
    """The table's entry for the error's class, or for the nearest class it derives from."""
    for cls in type(exc).__mro__:
        if cls in _DOMAIN_ERRORS:
            return _DOMAIN_ERRORS[cls]
    return 500, "INTERNAL_ERROR"


def handle_error(exc: Exception) -> Response:
    status, body, headers = error_payload(exc, request.environ)
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers)
    return response

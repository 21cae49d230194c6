"""The one place where failures become HTTP: every status >= 400 is the JSON error shape.

Domain errors carry their status and code; the framework's own HTTP errors (404, 405,
413, 415, ...) are mapped by status; anything else is a logged 500 with no details.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from ..errors import RegistryError

log = logging.getLogger(__name__)

_CODES_BY_STATUS = {
    400: "VALIDATION_FAILED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    503: "STORE_UNAVAILABLE",
}

_MESSAGES_BY_STATUS = {
    404: "No such resource; the API lives under /api/v1.",
    405: "This method is not allowed on this resource.",
    413: "The request body is larger than the configured limit.",
}


def init_app(app: Flask) -> None:
    app.register_error_handler(Exception, handle_error)


def error_payload(exc: Exception) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Any failure as (status, JSON error body, extra headers): the one mapping."""
    headers: dict[str, str] = {}
    errors = None
    if isinstance(exc, RegistryError):
        status, code, message, errors = exc.status, exc.code, exc.message, exc.errors
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


def handle_error(exc: Exception) -> Response:
    status, body, headers = error_payload(exc)
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers)
    return response

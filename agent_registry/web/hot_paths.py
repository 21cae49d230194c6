"""The two hottest requests, heartbeat and ack, answered without Flask's request machinery.

A fleet of 100 000 agents heartbeats 3 300 times a second, and acknowledging a
fleet-wide command is one request per agent. Profiling showed Flask's routing, request
and response objects cost about as much as everything else the app does, so these two
requests are served here, straight from WSGI, by the same core calls and the same error
mapping. Anything unusual (a query string, a foreign protocol version, a body that is not
small plain JSON, a body that fails validation) goes to the Flask app unchanged, which
answers it exactly as the contract says: this path only ever handles the clean case.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from marshmallow import ValidationError

from ..core.models import AckResult
from ..server.runtime import Runtime
from .errors import error_payload
from .representation import delivery_json
from .requests import PROTOCOL_HEADER, SUPPORTED_PROTOCOL_VERSIONS, reject_json_constant
from .schemas import AckSchema

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_AGENTS = "/api/v1/agents/"
_PROTOCOL = (PROTOCOL_HEADER, SUPPORTED_PROTOCOL_VERSIONS[-1])
_NO_CONTENT = f"{HTTPStatus.NO_CONTENT.value} {HTTPStatus.NO_CONTENT.phrase}"


def _status_line(status: int) -> str:
    return f"{status} {HTTPStatus(status).phrase}"


class HotPaths:
    def __init__(self, app: WSGIApp, runtime: Runtime) -> None:
        self._app = app
        self._runtime = runtime
        self._max_body = runtime.settings.max_body_bytes
        self._ack_schema = AckSchema()
        # What an ack without a body means (the schema's defaults), worked out once.
        self._default_ack = self._ack_schema.load({})

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]):
        path = environ["PATH_INFO"]
        if (
            environ["REQUEST_METHOD"] == "POST"
            and path.startswith(_AGENTS)
            and not environ.get("QUERY_STRING")
            and environ.get("HTTP_X_PROTOCOL_VERSION", "1").strip() == "1"
            and "HTTP_TRANSFER_ENCODING" not in environ
        ):
            parts = path[len(_AGENTS) :].split("/")
            if len(parts) == 2 and parts[1] == "heartbeat" and parts[0]:
                return self._heartbeat(parts[0], environ, start_response)
            if len(parts) == 4 and parts[1] == "commands" and parts[3] == "ack" and all(parts):
                return self._ack(parts[0], parts[2], environ, start_response)
        return self._app(environ, start_response)

    def _content_length(self, environ: dict[str, Any]) -> int | None:
        """The declared length when it is within the limit; None when Flask must answer."""
        raw = environ.get("CONTENT_LENGTH") or "0"
        if not raw.isdigit() or int(raw) > self._max_body:
            return None
        return int(raw)

    def _heartbeat(self, agent_id: str, environ: dict[str, Any], start_response):
        if self._content_length(environ) is None:
            return self._app(environ, start_response)
        try:
            self._runtime.registry.heartbeat(agent_id)
        except Exception as exc:
            return self._error(exc, start_response)
        start_response(_NO_CONTENT, [_PROTOCOL])
        return []

    def _ack(self, agent_id: str, command_id: str, environ: dict[str, Any], start_response):
        length = self._content_length(environ)
        if length is None:
            return self._app(environ, start_response)
        data: Any = {}
        if length:
            media_type = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
            body = environ["wsgi.input"].read(length)
            # Flask re-reads the body if it has to answer after all.
            environ["wsgi.input"] = io.BytesIO(body)
            if media_type != "application/json":
                return self._app(environ, start_response)
            try:
                data = json.loads(body, parse_constant=reject_json_constant) if body.strip() else {}
                fields = self._ack_schema.load(data)
            except (ValueError, ValidationError):
                return self._app(environ, start_response)
        else:
            fields = {**self._default_ack, "details": {}}
        result = AckResult(fields["status"], fields["message"], fields["details"])
        try:
            delivery = self._runtime.commands.acknowledge(agent_id, command_id, result)
        except Exception as exc:
            return self._error(exc, start_response)
        return _json(200, delivery_json(delivery), start_response)

    def _error(self, exc: Exception, start_response):
        status, body, headers = error_payload(exc)
        return _json(status, body, start_response, list(headers.items()))


def _json(status: int, value: Any, start_response, extra: list[tuple[str, str]] | None = None):
    payload = json.dumps(value, separators=(",", ":")).encode()
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(payload))),
        _PROTOCOL,
        *(extra or []),
    ]
    start_response(_status_line(status), headers)
    return [payload]

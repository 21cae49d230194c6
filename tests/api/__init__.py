"""HTTP contract tests: every rule of API.md's Conventions, Agents, Lifecycle, Commands,
Acknowledge and Read sections, checked through the Flask test client.

Shared assertions live here so each test module reads as a list of rules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from datetime import UTC, datetime
from types import EllipsisType
from typing import Any

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

# The HTTP reason phrase per status. 413 was renamed by RFC 9110; either name is a phrase.
REASONS: dict[int, set[str]] = {
    400: {"Bad Request"},
    401: {"Unauthorized"},
    403: {"Forbidden"},
    404: {"Not Found"},
    405: {"Method Not Allowed"},
    409: {"Conflict"},
    413: {"Content Too Large", "Request Entity Too Large", "Payload Too Large"},
    415: {"Unsupported Media Type"},
    500: {"Internal Server Error"},
    503: {"Service Unavailable"},
}

ERROR_KEYS = {"status", "error", "code", "message"}
AGENT_KEYS = {
    "id",
    "name",
    "group",
    "version",
    "routeIds",
    "capabilities",
    "state",
    "registeredAt",
    "lastHeartbeatAt",
    "stateChangedAt",
    "connected",
}
DELIVERY_KEYS = {"agentId", "status", "sentAt", "deliveredAt", "acknowledgedAt", "result"}
COMMAND_KEYS = {
    "commandId",
    "type",
    "payload",
    "target",
    "createdAt",
    "expiresAt",
    "createdBy",
    "deliverOnConnect",
    "state",
    "rollout",
    "summary",
    "deliveries",
}
SUMMARY_KEYS = {
    "targets",
    "pending",
    "delivered",
    "acknowledged",
    "failed",
    "expired",
    "cancelled",
}
TIMING_KEYS = {
    "heartbeatIntervalSeconds",
    "staleAfterSeconds",
    "deadAfterSeconds",
    "commandExpirySeconds",
    "keepaliveSeconds",
}


def iso(epoch: float) -> str:
    """Epoch seconds in the contract's timestamp format (UTC, milliseconds, ``Z``)."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def assert_error(
    response: Any,
    status: int,
    code: str,
    fields: Collection[str] | EllipsisType | None = None,
) -> dict[str, Any]:
    """Check the documented error shape and return the body.

    ``fields``: the exact set of names ``errors`` must hold; ``None`` when the body must
    carry no ``errors`` at all; ``...`` when either is acceptable (a body that is not JSON
    has no field to name).
    """
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.mimetype == "application/json", text
    body = json.loads(text)
    assert isinstance(body, dict), text
    assert ERROR_KEYS <= set(body) <= ERROR_KEYS | {"errors"}, body
    assert body["status"] == status, body
    assert body["error"] in REASONS[status], body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"].strip(), body
    assert "Traceback" not in text and 'File "' not in text, text
    if fields is None:
        assert "errors" not in body, body
    elif fields is not ...:
        assert code == "VALIDATION_FAILED"
        errors = body.get("errors")
        assert isinstance(errors, dict), body
        assert set(errors) == set(fields), body
        for reasons in errors.values():
            assert isinstance(reasons, list) and reasons, body
            assert all(isinstance(reason, str) and reason for reason in reasons), body
    return body


def padded(document: Any, size: int) -> bytes:
    """``document`` as JSON, padded with trailing whitespace to exactly ``size`` bytes."""
    raw = json.dumps(document).encode()
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))

"""The Server-Sent Events wire format, apart from any transport.

Pure functions from values to bytes (UTF-8). Field values must not contain line breaks:
they would end the field early on the wire, so they are refused instead.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from ..clock import iso
from ..core.models import Command

_LINE_BREAKS = ("\r", "\n")


def _check(name: str, value: str) -> str:
    if any(mark in value for mark in _LINE_BREAKS):
        raise ValueError(f"SSE {name} must be a single line")
    return value


def comment(text: str = "") -> bytes:
    """A comment line and the blank line that ends it, e.g. ``: ping\\n\\n``."""
    return f": {_check('comment', text)}\n\n".encode() if text else b":\n\n"


def event(
    data: str,
    *,
    event_id: str | None = None,
    event_type: str | None = None,
    retry_ms: int | None = None,
) -> bytes:
    """One event: optional ``retry``, ``id`` and ``event`` fields, then a single data line."""
    lines = []
    if retry_ms is not None:
        lines.append(f"retry: {int(retry_ms)}")
    if event_id is not None:
        lines.append(f"id: {_check('id', event_id)}")
    if event_type is not None:
        lines.append(f"event: {_check('event', event_type)}")
    lines.append(f"data: {_check('data', data)}")
    return ("\n".join(lines) + "\n\n").encode()


def json_line(value: Any) -> str:
    """Compact JSON on one line; non-ASCII kept as UTF-8 (JSON escapes any line break)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


RECONNECT_MS = 5000

# Written once the stream is registered with the hub: from here on no command is missed.
OPENING = f"retry: {RECONNECT_MS}\n: connected\n\n".encode()
PING = comment("ping")


class Signer(Protocol):
    def signature(self, signed: dict[str, Any]) -> dict[str, str]:
        """The event's ``signature`` member for these signed contents."""


def command_frame(command: Command, signer: Signer | None = None) -> bytes:
    """The event for a command; encoded (and signed) once, shared by every target's queue.

    With a signer, ``data`` gains ``signature`` last: the signed bytes are what ``data``
    says plus the command's target, so an agent can check that the command is meant for it.
    """
    data: dict[str, Any] = {
        "commandId": command.id,
        "type": str(command.type),
        "payload": command.payload,
        "issuedAt": iso(command.created_at),
        "expiresAt": iso(command.expires_at),
    }
    if signer is not None:
        target = {"kind": str(command.target.kind), "value": command.target.value}
        data["signature"] = signer.signature({**data, "target": target})
    return event(json_line(data), event_id=command.id, event_type=str(command.type))


def cancel_frame(command_id: str) -> bytes:
    """The ``cancel`` event: stop work on this command (API.md, Fleet operations).

    No ``id`` field: the last event id a client remembers stays that of a command.
    """
    return event(json_line({"commandId": command_id}), event_type="cancel")

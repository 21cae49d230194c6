"""Real signed command events, made by the server's own signer and frame encoder."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent_registry.core.models import Command, CommandType, Target, TargetKind
from agent_registry.security.signing import CommandSigner, SigningKey
from agent_registry.streams.sse import command_frame


def new_key() -> SigningKey:
    return SigningKey.of(Ed25519PrivateKey.generate())


def registration_keys(signer: CommandSigner) -> dict[str, Any]:
    """The two fields a registration answer publishes the signer's keys in."""
    published = signer.published()
    return {"serverPublicKey": published[0], "serverPublicKeys": published}


def frame(
    signer: CommandSigner | None,
    *,
    target: tuple[str, str | None] = ("agent", "agent-1"),
    payload: dict[str, Any] | None = None,
    command_id: str | None = None,
    command_type: str = "deep-trace",
    expires_in: float = 60.0,
) -> bytes:
    now = time.time()
    command = Command(
        command_id or str(uuid.uuid4()),
        CommandType(command_type),
        {"routeId": "route-a"} if payload is None else payload,
        Target(TargetKind(target[0]), target[1]),
        now,
        now + expires_in,
    )
    return command_frame(command, signer)


def event_of(frame_bytes: bytes) -> tuple[str, str]:
    """The ``event`` and ``data`` fields of one encoded frame."""
    fields = dict(line.split(": ", 1) for line in frame_bytes.decode().splitlines() if line)
    return fields["event"], fields["data"]


def data_of(frame_bytes: bytes) -> dict[str, Any]:
    return json.loads(event_of(frame_bytes)[1])


def with_data(frame_bytes: bytes, data: dict[str, Any]) -> tuple[str, str]:
    """The frame's event type with other ``data`` (a tampered event)."""
    return event_of(frame_bytes)[0], json.dumps(data)

"""Command ids: UUID version 7, so they sort by creation time."""

from __future__ import annotations

import os
import uuid


def new_command_id(now: float) -> str:
    """A UUIDv7 (RFC 9562) string: 48 bits of Unix milliseconds, then random bits."""
    millis = int(now * 1000) & ((1 << 48) - 1)
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    value &= ~(0xF << 76)
    value |= 0x7 << 76
    value &= ~(0x3 << 62)
    value |= 0x2 << 62
    return str(uuid.UUID(int=value))

"""Command ids: UUID version 7, so they sort by creation time."""

from __future__ import annotations

import os
import uuid

_RANDOM_BITS = 74  # 12 bits rand_a + 62 bits rand_b


class CommandIds:
    """UUIDv7 (RFC 9562) strings, strictly increasing within one process.

    48 bits of Unix milliseconds, then random bits; ids made in the same millisecond
    continue from the previous one (RFC 9562 §6.2, method 2), so "newest first" holds
    even for commands sent in one millisecond.
    """

    def __init__(self) -> None:
        self._last_millis = -1
        self._last_random = 0

    def new(self, now: float) -> str:
        millis = int(now * 1000) & ((1 << 48) - 1)
        if millis <= self._last_millis:
            millis = self._last_millis
            random = self._last_random + 1 + int.from_bytes(os.urandom(2), "big")
            if random >= 1 << _RANDOM_BITS:
                millis, random = millis + 1, int.from_bytes(os.urandom(8), "big")
        else:
            random = int.from_bytes(os.urandom(10), "big") >> (80 - _RANDOM_BITS + 1)
        self._last_millis, self._last_random = millis, random
        rand_a, rand_b = random >> 62, random & ((1 << 62) - 1)
        value = (millis << 80) | (0x7 << 76) | (rand_a << 64) | (0x2 << 62) | rand_b
        return str(uuid.UUID(int=value))


def created_millis(command_id: str) -> float:
    """When the command was created, in epoch seconds, to the millisecond of its UUIDv7.

    Lets the delivery path time a delivery from ``createdAt`` without reading the command:
    a stream knows only the ids it wrote.
    """
    return (uuid.UUID(command_id).int >> 80) / 1000

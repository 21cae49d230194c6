"""Checking command events before they run (API.md, Security, Signed commands).

When the registration answer publishes keys, an event runs only if its ``signature``
verifies (Ed25519 over the base64-decoded ``signed`` bytes, with the published key of its
``keyId``); the command is then read from those signed bytes alone, never from the
unsigned fields beside them, and must be addressed to this agent (its id, its group, or
all) and not have expired. Without published keys, events are taken as they come.

In both cases a ``commandId`` seen before is not run again (a server may write a command
twice: ``deliverOnConnect`` after a crash). The agent remembers the last
``REMEMBERED_IDS`` ids, across reconnects: a command older than that many newer ones has
long expired, and an expired signed command is refused anyway.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_der_public_key

from .commands import Command

log = logging.getLogger(__name__)

REMEMBERED_IDS = 4096


class Rejected(ValueError):
    """An event that must not run; ``str()`` says why."""


class UnknownKey(Rejected):
    """Signed with a key the last registration did not publish (the server rotated keys)."""


class Repeated(Rejected):
    """A command this agent has already taken."""


@dataclass(frozen=True, slots=True)
class ServerKeys:
    """The public keys of one registration answer, by ``keyId``."""

    by_id: Mapping[str, Ed25519PublicKey]

    @classmethod
    def published(cls, answer: Mapping[str, Any]) -> ServerKeys | None:
        """The answer's keys; None when it publishes none (the server does not sign).

        A key that cannot be read is left out (and logged): events signed with it are
        refused, never run unchecked.
        """
        listed = answer.get("serverPublicKeys")
        if listed is None and answer.get("serverPublicKey") is not None:
            listed = [answer["serverPublicKey"]]
        if listed is None:
            return None
        keys = {}
        for entry in listed if isinstance(listed, list) else [listed]:
            try:
                keys[str(entry["keyId"])] = _public_key(entry)
            except (KeyError, TypeError, ValueError) as exc:
                log.error("ignoring a server key that cannot be used (%s): %.200r", exc, entry)
        return cls(keys)


def _public_key(entry: Mapping[str, Any]) -> Ed25519PublicKey:
    if entry.get("algorithm") != "Ed25519":
        raise ValueError(f"algorithm {entry.get('algorithm')!r} is not Ed25519")
    key = load_der_public_key(base64.b64decode(entry["publicKey"], validate=True))
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


class EventChecker:
    """Turns one agent's events into commands it may run, or raises :class:`Rejected`."""

    def __init__(
        self,
        agent_id: str,
        group: str,
        clock: Callable[[], float] = time.time,
        remember: int = REMEMBERED_IDS,
    ) -> None:
        self.agent_id, self.group, self.clock, self.remember = agent_id, group, clock, remember
        self._seen: dict[str, None] = {}  # insertion order: the oldest id comes first

    def command(self, event_type: str, data: str, keys: ServerKeys | None) -> Command:
        """The command to run; the first time an id passes, it is remembered."""
        try:
            if keys is None:
                command = Command.from_event(event_type, data)
            else:
                command = self._signed(json.loads(data), keys)
        except Rejected:
            raise
        except ValueError as exc:
            raise Rejected(f"it is not a command ({exc})") from None
        if command.id in self._seen:
            raise Repeated(f"command {command.id} was already taken; it does not run twice")
        self._seen[command.id] = None
        if len(self._seen) > self.remember:
            del self._seen[next(iter(self._seen))]
        return command

    def _signed(self, body: object, keys: ServerKeys) -> Command:
        signature = body.get("signature") if isinstance(body, dict) else None
        if not isinstance(signature, dict):
            raise Rejected("it carries no signature, and this server signs every command")
        key_id, signed, value = (signature.get(name) for name in ("keyId", "signed", "value"))
        if not (isinstance(key_id, str) and isinstance(signed, str) and isinstance(value, str)):
            raise Rejected("its signature lacks keyId, signed or value")
        key = keys.by_id.get(key_id)
        if key is None:
            raise UnknownKey(f"it is signed with key {key_id!r}, which the server did not publish")
        try:
            content = base64.b64decode(signed, validate=True)
            key.verify(base64.b64decode(value, validate=True), content)
        except (binascii.Error, InvalidSignature):
            raise Rejected(f"its signature does not verify with key {key_id!r}") from None
        signed_body = json.loads(content)
        command = Command.from_data("", signed_body)  # the type too comes from the signed bytes
        self._check_target(signed_body.get("target"))
        self._check_expiry(command.expires_at)
        return command

    def _check_target(self, target: object) -> None:
        if isinstance(target, dict):
            kind, value = target.get("kind"), target.get("value")
            if (kind, value) in {("all", None), ("group", self.group), ("agent", self.agent_id)}:
                return
            raise Rejected(
                f"it is signed for {kind} {value!r}, not for agent {self.agent_id!r} "
                f"of group {self.group!r}"
            )
        raise Rejected("its signed content names no target")

    def _check_expiry(self, expires_at: str | None) -> None:
        if not isinstance(expires_at, str):
            raise Rejected("its signed content has no expiresAt")
        if datetime.fromisoformat(expires_at).timestamp() <= self.clock():
            raise Rejected(f"it expired at {expires_at}")

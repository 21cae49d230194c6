"""Ed25519 signatures on command events (API.md, Security, Signed commands).

A key file holds one or more PKCS#8 Ed25519 private keys in PEM: the first one signs, every
one is published, so that agents keep trusting the old key while a rotation is under way.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ALGORITHM = "Ed25519"
_PEM_BLOCK = re.compile(rb"-----BEGIN PRIVATE KEY-----\r?\n.*?-----END PRIVATE KEY-----", re.DOTALL)


class KeyFileError(ValueError):
    """The key file cannot be used; the message says why (the caller names the variable)."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    private: Ed25519PrivateKey
    key_id: str
    public_key: str  # base64 DER SubjectPublicKeyInfo, what Java's X509EncodedKeySpec reads

    @classmethod
    def of(cls, private: Ed25519PrivateKey) -> SigningKey:
        public = private.public_key()
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(private, hashlib.sha256(raw).hexdigest()[:16], base64.b64encode(der).decode())

    def published(self) -> dict[str, str]:
        return {"keyId": self.key_id, "algorithm": ALGORITHM, "publicKey": self.public_key}


def generate_pem() -> bytes:
    """A new private key as the key file holds it (PKCS#8 PEM, unencrypted)."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_keys(path: str) -> list[SigningKey]:
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot be read ({exc.strerror})") from None
    blocks = _PEM_BLOCK.findall(content)
    if not blocks:
        raise KeyFileError("holds no PKCS#8 private key ('-----BEGIN PRIVATE KEY-----')")
    if content.count(b"-----BEGIN ") != len(blocks):
        raise KeyFileError("holds a PEM block that is not a PKCS#8 private key")
    keys = []
    for number, block in enumerate(blocks, start=1):
        try:
            private = serialization.load_pem_private_key(block, password=None)
        except (ValueError, TypeError) as exc:
            raise KeyFileError(f"key {number} cannot be read: {exc}") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise KeyFileError(f"key {number} is not an Ed25519 key")
        keys.append(SigningKey.of(private))
    if len({key.key_id for key in keys}) != len(keys):
        raise KeyFileError("holds the same key twice")
    return keys


class CommandSigner:
    """Signs what a command event says; the first key signs, every key is published."""

    def __init__(self, keys: Sequence[SigningKey], ephemeral: bool = False) -> None:
        if not keys:
            raise ValueError("a signer needs at least one key")
        self._keys = list(keys)
        self.ephemeral = ephemeral  # generated at start: agents learn it again after a restart

    @property
    def key_id(self) -> str:
        return self._keys[0].key_id

    def published(self) -> list[dict[str, str]]:
        return [key.published() for key in self._keys]

    def signature(self, signed: dict[str, Any]) -> dict[str, str]:
        """The ``signature`` member of an event: the signed JSON bytes and their signature."""
        data = json.dumps(signed, ensure_ascii=False, separators=(",", ":")).encode()
        value = self._keys[0].private.sign(data)
        return {
            "keyId": self._keys[0].key_id,
            "signed": base64.b64encode(data).decode(),
            "value": base64.b64encode(value).decode(),
        }

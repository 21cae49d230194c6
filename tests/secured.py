"""A real server with auth on and a signing key file, and the tokens to talk to it."""

from __future__ import annotations

import time
from pathlib import Path

from agent_registry.security.signing import generate_pem
from agent_registry.security.tokens import Role, TokenIssuer

SECRET = "test-secret-" + "x" * 32
ISSUER = TokenIssuer(SECRET, time.time)


def secured_env(directory: Path, **settings: str) -> dict[str, str]:
    """``AGENT_REGISTRY_AUTH=on`` with a token secret and a key file written in ``directory``."""
    key_file = directory / "signing.pem"
    key_file.write_bytes(generate_pem())
    return {
        "AGENT_REGISTRY_AUTH": "on",
        "AGENT_REGISTRY_TOKEN_SECRET": SECRET,
        "AGENT_REGISTRY_SIGNING_KEY_FILE": str(key_file),
        **settings,
    }


def operator_token(role: str = "operator", groups: list[str] | None = None) -> str:
    return ISSUER.operator("tester", Role(role), groups, 3600)[0]


def enrollment_token(groups: list[str] | None = None, ttl: float = 3600) -> str:
    return ISSUER.enrollment(groups, ttl)[0]

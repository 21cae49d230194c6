"""Every start-up refusal of the security settings names the variable to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from agent_registry.config import ConfigError, load_settings
from agent_registry.security.setup import load_security
from agent_registry.security.signing import generate_pem
from harness.clock import FakeClock

SECRET = "s" * 32
REDIS = "redis://localhost:6379/0"


def security(**values: str):
    settings = load_settings({f"AGENT_REGISTRY_{k.upper()}": v for k, v in values.items()}, {})
    return load_security(settings, FakeClock())


def refusal(**values: str) -> str:
    with pytest.raises(ConfigError) as refused:
        security(**values)
    return str(refused.value)


def pem_of_private(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def pem_of_public(key) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write(tmp_path: Path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def test_auth_is_off_by_default_and_nothing_signs():
    found = security()
    assert (found.auth, found.signer, found.issuer) == (False, None, None)


def test_auth_on_needs_a_token_secret():
    assert "AGENT_REGISTRY_TOKEN_SECRET" in refusal(auth="on")


def test_a_short_secret_is_refused_without_being_shown():
    message = refusal(auth="on", token_secret="short-secret")
    assert "AGENT_REGISTRY_TOKEN_SECRET" in message and "32 bytes" in message
    assert "short-secret" not in message


def test_memory_store_with_auth_on_signs_with_an_ephemeral_key():
    signer = security(auth="on", token_secret=SECRET).signer
    assert signer is not None and signer.ephemeral


def test_redis_store_with_auth_on_needs_a_key_file():
    message = refusal(auth="on", token_secret=SECRET, store=REDIS)
    assert "AGENT_REGISTRY_SIGNING_KEY_FILE" in message


def test_redis_store_with_auth_on_and_a_key_file_starts(tmp_path):
    key_file = write(tmp_path, "k.pem", generate_pem())
    found = security(auth="on", token_secret=SECRET, store=REDIS, signing_key_file=key_file)
    assert found.auth and found.signer is not None and not found.signer.ephemeral


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "no PKCS#8 private key"),
        (b"-----BEGIN PRIVATE KEY-----\nbm9wZQ==\n-----END PRIVATE KEY-----\n", "cannot be read"),
        (pem_of_private(rsa.generate_private_key(65537, 2048)), "not an Ed25519 key"),
        (generate_pem() * 2, "the same key twice"),
    ],
    ids=["empty", "not a key", "RSA", "twice"],
)
def test_a_key_file_that_is_not_ed25519_keys_is_refused(tmp_path, content, why):
    message = refusal(signing_key_file=write(tmp_path, "k.pem", content))
    assert "AGENT_REGISTRY_SIGNING_KEY_FILE" in message and why in message


def test_a_missing_key_file_is_refused(tmp_path):
    message = refusal(signing_key_file=str(tmp_path / "absent.pem"))
    assert "AGENT_REGISTRY_SIGNING_KEY_FILE" in message and "cannot be read" in message


def test_several_keys_publish_all_and_the_first_signs(tmp_path):
    first, second = generate_pem(), generate_pem()
    signer = security(signing_key_file=write(tmp_path, "k.pem", first + second)).signer
    assert signer is not None
    published = signer.published()
    assert len(published) == 2 and published[0]["keyId"] == signer.key_id
    assert signer.signature({"commandId": "c"})["keyId"] == published[0]["keyId"]


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"not a key", "not a PEM public key"),
        (pem_of_public(ec.generate_private_key(ec.SECP384R1()).public_key()), "P-256"),
    ],
    ids=["garbage", "EC P-384"],
)
def test_an_unusable_identity_provider_key_is_refused(tmp_path, content, why):
    path = write(tmp_path, "idp.pem", content)
    message = refusal(auth="on", token_secret=SECRET, operator_public_key_file=path)
    assert "AGENT_REGISTRY_OPERATOR_PUBLIC_KEY_FILE" in message and why in message


@pytest.mark.parametrize(
    "key",
    [
        rsa.generate_private_key(65537, 2048).public_key(),
        ec.generate_private_key(ec.SECP256R1()).public_key(),
    ],
    ids=["RSA", "EC P-256"],
)
def test_rsa_and_p256_identity_provider_keys_are_accepted(tmp_path, key):
    path = write(tmp_path, "idp.pem", pem_of_public(key))
    assert security(auth="on", token_secret=SECRET, operator_public_key_file=path).auth

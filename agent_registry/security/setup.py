"""What the security settings make, checked together at start.

Each setting is parsed on its own in ``config.py``; the rules that tie them together (a
secret with ``AUTH=on``, keys that load and are of the right kind, one signing key shared by
every worker of a Redis store) are checked here, so that a bad combination stops the server
with a message naming the variable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ..clock import Clock
from ..config import ConfigError, Settings, variable_name
from .signing import CommandSigner, KeyFileError, SigningKey, load_keys

if TYPE_CHECKING:
    from .tokens import TokenIssuer, TokenVerifier

# Each kind of identity-provider key signs with one algorithm: only that one is accepted.
_PROVIDER_ALGORITHMS: tuple[tuple[type, str], ...] = (
    (rsa.RSAPublicKey, "RS256"),
    (ec.EllipticCurvePublicKey, "ES256"),
    (ed25519.Ed25519PublicKey, "EdDSA"),
)


@dataclass(frozen=True, slots=True)
class Security:
    """Present only with ``AUTH=on`` (``verifier``/``issuer``) or a key file (``signer``)."""

    verifier: TokenVerifier | None
    issuer: TokenIssuer | None
    signer: CommandSigner | None
    agent_token_ttl: float

    @property
    def auth(self) -> bool:
        return self.verifier is not None


def check_security(settings: Settings) -> None:
    """Every refusal ``load_security`` would make, without loading PyJWT: the gunicorn
    master checks here, and PyJWT imports ``ssl``, which gevent must patch first in the
    workers (a module imported in the master is imported in every worker it forks)."""
    _signer(settings)
    if settings.auth:
        _secret(settings)
        _provider(settings.operator_public_key_file)


def load_security(settings: Settings, clock: Clock) -> Security:
    signer = _signer(settings)
    if not settings.auth:
        return Security(None, None, signer, settings.agent_token_ttl_seconds)
    from .tokens import TokenIssuer, TokenVerifier

    secret = _secret(settings)
    provider = _provider(settings.operator_public_key_file)
    verifier = TokenVerifier(secret, clock, provider)
    issuer = TokenIssuer(secret, clock, verifier)
    return Security(verifier, issuer, signer, settings.agent_token_ttl_seconds)


def _secret(settings: Settings) -> str:
    if settings.token_secret is None:
        raise ConfigError(
            f"{variable_name('auth')}=on needs {variable_name('token_secret')} "
            "(at least 32 bytes; docs/security.md shows how to make one)"
        )
    return settings.token_secret


def _signer(settings: Settings) -> CommandSigner | None:
    name = variable_name("signing_key_file")
    if settings.signing_key_file is not None:
        try:
            return CommandSigner(load_keys(settings.signing_key_file))
        except KeyFileError as exc:
            raise ConfigError(f"{name}={settings.signing_key_file!r} {exc}") from None
    if not settings.auth:
        return None
    if not settings.uses_memory_store:
        raise ConfigError(
            f"{variable_name('auth')}=on with a Redis store needs {name}: every worker and "
            "host must sign commands with the same key"
        )
    # One process holds every stream, so a key made now signs everything it sends.
    return CommandSigner([SigningKey.of(ed25519.Ed25519PrivateKey.generate())], ephemeral=True)


def _provider(path: str | None) -> tuple[Any, str] | None:
    """The identity provider's public key and the algorithm it signs with."""
    if path is None:
        return None
    name = variable_name("operator_public_key_file")
    try:
        key = load_pem_public_key(Path(path).read_bytes())
    except OSError as exc:
        raise ConfigError(f"{name}={path!r} cannot be read ({exc.strerror})") from None
    except ValueError:
        raise ConfigError(f"{name}={path!r} is not a PEM public key") from None
    algorithm = next((alg for kind, alg in _PROVIDER_ALGORITHMS if isinstance(key, kind)), None)
    if algorithm is None:
        raise ConfigError(f"{name}={path!r} must be an RSA, EC (P-256) or Ed25519 public key")
    if isinstance(key, ec.EllipticCurvePublicKey) and not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError(f"{name}={path!r} is an EC key on {key.curve.name}; ES256 needs P-256")
    return key, algorithm

"""The three kinds of JWT (API.md, Security, Tokens): minting and verifying them.

PyJWT does the verification (signature, ``exp``, ``nbf``, ``iat``, ``aud``, with 30 s of
leeway); this module turns the claims into a :class:`Caller` and refuses claims that do not
fit their kind. A verification costs about 90 µs of CPU in PyJWT, about as much as a whole
heartbeat, so every process keeps the callers of the tokens it verified, keyed by the exact
token text: an agent sends the same token for hours, and a repeat costs a dictionary
lookup and a clock comparison. Nothing a store knows is cached: whether the token's
``gen`` is still the agent's is asked of the store on every request.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt

from ..clock import Clock
from ..errors import TokenExpired, Unauthenticated

LEEWAY_SECONDS = 30
SERVER_ALGORITHM = "HS256"
# What an identity provider may sign operator tokens with (AGENT_REGISTRY_OPERATOR_PUBLIC_KEY_FILE).
PROVIDER_ALGORITHMS = ("RS256", "ES256", "EdDSA")
ALL_GROUPS = "*"


class TokenKind(StrEnum):
    OPERATOR = "operator"
    ENROLLMENT = "enrollment"
    AGENT = "agent"

    @property
    def audience(self) -> str:
        return _AUDIENCES[self]


_AUDIENCES = {
    TokenKind.OPERATOR: "agent-registry:operator",
    TokenKind.ENROLLMENT: "agent-registry:enroll",
    TokenKind.AGENT: "agent-registry:agent",
}
_KINDS_BY_AUDIENCE = {audience: kind for kind, audience in _AUDIENCES.items()}


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request, as its verified token says.

    ``groups`` is None for every group (``*``). ``generation`` is an agent token's ``gen``.
    """

    kind: TokenKind
    subject: str | None
    expires_at: float
    not_before: float | None = None
    role: Role | None = None
    groups: frozenset[str] | None = None
    generation: int | None = None

    def may_reach(self, group: str) -> bool:
        return self.groups is None or group in self.groups


def groups_claim(groups: Collection[str] | None) -> list[str]:
    """Group names as a token states them: ``["*"]`` for every group."""
    return [ALL_GROUPS] if groups is None else sorted(groups)


class TokenIssuer:
    """Mints the server's own tokens (HS256 with the token secret)."""

    def __init__(self, secret: str, clock: Clock) -> None:
        self._secret = secret
        self._clock = clock

    def operator(
        self, subject: str, role: Role, groups: Collection[str] | None, ttl: float
    ) -> tuple[str, float]:
        claims = {"sub": subject, "role": role.value, "groups": groups_claim(groups)}
        return self._mint(TokenKind.OPERATOR, claims, ttl)

    def enrollment(
        self, groups: Collection[str] | None, ttl: float, subject: str | None = None
    ) -> tuple[str, float]:
        claims: dict[str, Any] = {"groups": groups_claim(groups)}
        if subject is not None:
            claims["sub"] = subject
        return self._mint(TokenKind.ENROLLMENT, claims, ttl)

    def agent(
        self, agent_id: str, generation: int, groups: frozenset[str] | None, ttl: float
    ) -> tuple[str, float]:
        """An agent's own token. ``groups`` are those its enrollment allowed: renewing with
        this token may register the agent into those groups only."""
        claims = {"sub": agent_id, "gen": generation, "groups": groups_claim(groups)}
        return self._mint(TokenKind.AGENT, claims, ttl)

    def _mint(self, kind: TokenKind, claims: dict[str, Any], ttl: float) -> tuple[str, float]:
        now = self._clock()
        expires_at = now + ttl
        payload = {
            **claims,
            "aud": kind.audience,
            "iat": int(now),
            "exp": int(expires_at),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(payload, self._secret, algorithm=SERVER_ALGORITHM), float(int(expires_at))


class TokenVerifier:
    """Verifies a bearer token and says who the caller is, or raises why not.

    ``provider_key`` is an identity provider's public key: operator tokens signed by it
    (RS256, ES256 or EdDSA) are accepted too. Every other token is the server's own HS256.
    """

    def __init__(
        self,
        secret: str,
        clock: Clock,
        provider_key: Any = None,
        cache_size: int = 100_000,
    ) -> None:
        self._secret = secret
        self._clock = clock
        self._provider_key = provider_key
        self._cache: dict[str, Caller] = {}
        self._cache_size = cache_size
        self._jwt = jwt.PyJWT(options={"require": ["exp", "aud"], "verify_aud": False})

    def verify(self, token: str) -> Caller:
        caller = self._cache.get(token)
        if caller is None:
            caller = self._decode(token)
            if len(self._cache) >= self._cache_size:
                del self._cache[next(iter(self._cache))]  # the oldest entry
            self._cache[token] = caller
        now = self._clock()
        if now > caller.expires_at + LEEWAY_SECONDS:
            raise TokenExpired("The token has expired; get a new one.")
        if caller.not_before is not None and now < caller.not_before - LEEWAY_SECONDS:
            raise Unauthenticated("The token is not valid yet (nbf/iat is in the future).")
        return caller

    def _decode(self, token: str) -> Caller:
        try:
            header = jwt.get_unverified_header(token)
            algorithm = header.get("alg")
            if algorithm == SERVER_ALGORITHM:
                key: Any = self._secret
            elif algorithm in PROVIDER_ALGORITHMS and self._provider_key is not None:
                key = self._provider_key
            else:
                raise Unauthenticated(f"Tokens signed with {algorithm!r} are not accepted.")
            # exp, nbf and iat are checked on every use (see verify), cached or not.
            claims = self._jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"The token is not valid: {exc}.") from None
        caller = _caller(claims)
        if caller.kind is not TokenKind.OPERATOR and key is not self._secret:
            raise Unauthenticated("Only operator tokens may be signed by the identity provider.")
        return caller


def _caller(claims: Mapping[str, Any]) -> Caller:
    """The caller the claims describe; claims that do not fit their kind are refused."""
    kind = _kind(claims.get("aud"))
    expires_at = _number(claims, "exp")
    starts = [_number(claims, name) for name in ("nbf", "iat") if name in claims]
    not_before = max(starts) if starts else None
    groups = _groups(claims.get("groups", [ALL_GROUPS]))
    subject = claims.get("sub")
    if subject is not None and not isinstance(subject, str):
        raise Unauthenticated("The token's 'sub' is not a string.")
    if kind is TokenKind.OPERATOR:
        if not subject:
            raise Unauthenticated("An operator token needs a 'sub' (who is calling).")
        try:
            role = Role(str(claims.get("role")))
        except ValueError:
            raise Unauthenticated(
                f"An operator token's 'role' must be one of {', '.join(Role)}."
            ) from None
        return Caller(kind, subject, expires_at, not_before, role=role, groups=groups)
    if kind is TokenKind.AGENT:
        generation = claims.get("gen")
        if not subject or not isinstance(generation, int) or isinstance(generation, bool):
            raise Unauthenticated("An agent token needs 'sub' (the agent id) and 'gen'.")
        return Caller(kind, subject, expires_at, not_before, groups=groups, generation=generation)
    return Caller(kind, subject, expires_at, not_before, groups=groups)


def _kind(audience: Any) -> TokenKind:
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list):
        raise Unauthenticated("The token's 'aud' is not a string or a list.")
    kinds = {_KINDS_BY_AUDIENCE[name] for name in audiences if name in _KINDS_BY_AUDIENCE}
    if len(kinds) != 1:
        raise Unauthenticated(
            "The token's audience must be exactly one of " + ", ".join(_KINDS_BY_AUDIENCE) + "."
        )
    return kinds.pop()


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthenticated(f"The token's '{name}' is not a number.")
    return float(value)


def _groups(value: Any) -> frozenset[str] | None:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise Unauthenticated("The token's 'groups' must be a list of group names, or '*'.")
    return None if ALL_GROUPS in names else frozenset(names)

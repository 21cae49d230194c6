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

import math
import uuid
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt

from ..clock import Clock
from ..errors import TokenExpired, Unauthenticated

LEEWAY_SECONDS = 30
SERVER_ALGORITHM = "HS256"
ALL_GROUPS = "*"
# Longer is not a token of ours (ours are ~300 bytes): refused before any decoding.
MAX_TOKEN_CHARS = 8192


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
    """Mints the server's own tokens (HS256 with the token secret).

    With ``verifier``, each token minted is also put in that verifier's cache: an agent's
    first heartbeat after registering costs no PyJWT decode on the worker that minted it.
    """

    def __init__(self, secret: str, clock: Clock, verifier: TokenVerifier | None = None) -> None:
        self._secret = secret
        self._clock = clock
        self._verifier = verifier

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
        token = jwt.encode(payload, self._secret, algorithm=SERVER_ALGORITHM)
        if self._verifier is not None:
            self._verifier.remember(token, payload)
        return token, float(payload["exp"])


class TokenVerifier:
    """Verifies a bearer token and says who the caller is, or raises why not.

    ``provider`` is an identity provider's public key and the one algorithm that key signs
    with (RS256, ES256 or EdDSA, from the key's type): operator tokens it signs are
    accepted too. Every other token is the server's own HS256.
    """

    def __init__(
        self,
        secret: str,
        clock: Clock,
        provider: tuple[Any, str] | None = None,
        cache_size: int = 100_000,
    ) -> None:
        self._secret = secret
        self._clock = clock
        self._provider = provider
        # Oldest first: when full, the oldest entry goes (O(1), unlike a dict's first key).
        self._cache: OrderedDict[str, Caller] = OrderedDict()
        self._cache_size = cache_size
        self._jwt = jwt.PyJWT(options={"require": ["exp", "aud"], "verify_aud": False})

    def verify(self, token: str) -> Caller:
        caller = self._cache.get(token)
        if caller is None:
            caller = self._remember(token, self._decode(token))
        now = self._clock()
        if now > caller.expires_at + LEEWAY_SECONDS:
            raise TokenExpired("The token has expired; get a new one.")
        if caller.not_before is not None and now < caller.not_before - LEEWAY_SECONDS:
            raise Unauthenticated("The token is not valid yet (nbf/iat is in the future).")
        return caller

    def remember(self, token: str, claims: Mapping[str, Any]) -> None:
        """Cache the caller of a token this server just minted, from its claims."""
        self._remember(token, _caller(claims))

    def _remember(self, token: str, caller: Caller) -> Caller:
        if len(self._cache) >= self._cache_size:
            self._cache.popitem(last=False)
        self._cache[token] = caller
        return caller

    def _decode(self, token: str) -> Caller:
        if len(token) > MAX_TOKEN_CHARS:
            raise Unauthenticated(f"The token is longer than {MAX_TOKEN_CHARS} characters.")
        try:
            # Without a provider key only HS256 is accepted, and PyJWT checks that itself:
            # reading the header first would parse the token twice.
            algorithm: Any = SERVER_ALGORITHM
            if self._provider is not None:
                algorithm = jwt.get_unverified_header(token).get("alg")
            if algorithm == SERVER_ALGORITHM:
                key: Any = self._secret
            elif self._provider is not None and algorithm == self._provider[1]:
                key = self._provider[0]
            else:
                shown = str(algorithm)[:16]
                raise Unauthenticated(f"Tokens signed with '{shown}' are not accepted here.")
            # exp, nbf and iat are checked on every use (see verify), cached or not.
            claims = self._jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.PyJWTError as exc:  # InvalidTokenError, and a key PyJWT cannot use
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
    kinds = {
        _KINDS_BY_AUDIENCE[name]
        for name in audiences
        if isinstance(name, str) and name in _KINDS_BY_AUDIENCE
    }
    if len(kinds) != 1:
        raise Unauthenticated(
            "The token's audience must be exactly one of " + ", ".join(_KINDS_BY_AUDIENCE) + "."
        )
    return kinds.pop()


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthenticated(f"The token's '{name}' is not a number.")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise Unauthenticated(f"The token's '{name}' is not a finite number.")
    return number


def _groups(value: Any) -> frozenset[str] | None:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise Unauthenticated("The token's 'groups' must be a list of group names, or '*'.")
    return None if ALL_GROUPS in names else frozenset(names)

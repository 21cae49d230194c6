"""Domain errors: values the core raises, with a message and, for validation, the fields.

They know nothing of HTTP: ``agent_registry.web.errors`` maps each class to its status
and stable code in one table, and turns every failure into the JSON error shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class RegistryError(Exception):
    def __init__(self, message: str, errors: Mapping[str, Sequence[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = dict(errors) if errors else None


class AuthRefused(RegistryError):
    """A request refused by authentication or authorization; ``reason`` labels it in the
    metrics (agent_registry_auth_failures_total) and the log, never the token."""

    reason = "invalid"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class ValidationFailed(RegistryError):
    """A request body, query string or path value breaks the contract's rules."""


class BadRequest(RegistryError):
    """A request that cannot be taken as HTTP at all: a malformed request line,
    ``Content-Length`` or chunked body, or a ``Host`` that is not ``host[:port]``."""


class UriTooLong(RegistryError):
    """The request line is longer than the HTTP layer reads (the server's own limit)."""


class HeadersTooLarge(RegistryError):
    """Too many header fields, or one longer than the HTTP layer reads."""


class PathNotFound(RegistryError):
    """A path no route can match, for a reason worth saying (an encoded ``/`` in a
    segment): answered like any unknown path."""


class UnsupportedMediaType(RegistryError):
    pass


class PayloadTooLarge(RegistryError):
    pass


class UnsupportedProtocolVersion(RegistryError):
    pass


class AgentNotFound(RegistryError):
    pass


class AgentNotRegistered(RegistryError):
    """A heartbeat from an id the registry does not know: the agent must register again."""


class NoLiveTargets(RegistryError):
    pass


class CommandNotFound(RegistryError):
    pass


class CommandExpired(RegistryError):
    pass


class AlreadyAcknowledged(RegistryError):
    pass


class CommandCancelled(RegistryError):
    """An ack of a delivery that was cancelled (the command, or its agent deleted)."""


class Unauthenticated(AuthRefused):
    """No token, or one that cannot be trusted: malformed, badly signed, wrong audience,
    not yet valid, or no longer the agent's current one."""


class TokenExpired(Unauthenticated):
    reason = "expired"


class Forbidden(AuthRefused):
    """A valid token that may not do this: role, group scope, another agent's id."""

    reason = "forbidden"


class NotAvailable(RegistryError):
    """What was asked for does not exist on this server (tokens with auth off)."""


class StoreUnavailable(RegistryError):
    """The shared store cannot be reached (an outage, not a bug)."""

"""Domain errors: values that carry their HTTP status and stable code.

The core raises them; the web layer turns every one into the JSON error shape in a single
handler (``agent_registry.web.errors``). Nothing below the web layer knows about Flask.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class RegistryError(Exception):
    status: int = 500
    code: str = "INTERNAL_ERROR"

    def __init__(
        self, message: str, errors: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors = dict(errors) if errors else None


class ValidationFailed(RegistryError):
    status, code = 400, "VALIDATION_FAILED"


class UnsupportedMediaType(RegistryError):
    status, code = 415, "UNSUPPORTED_MEDIA_TYPE"


class PayloadTooLarge(RegistryError):
    status, code = 413, "PAYLOAD_TOO_LARGE"


class UnsupportedProtocolVersion(RegistryError):
    status, code = 400, "UNSUPPORTED_PROTOCOL_VERSION"


class AgentNotFound(RegistryError):
    status, code = 404, "AGENT_NOT_FOUND"


class AgentNotRegistered(RegistryError):
    status, code = 404, "AGENT_NOT_REGISTERED"


class NoLiveTargets(RegistryError):
    status, code = 404, "NO_LIVE_TARGETS"


class CommandNotFound(RegistryError):
    status, code = 404, "COMMAND_NOT_FOUND"


class CommandExpired(RegistryError):
    status, code = 409, "COMMAND_EXPIRED"


class AlreadyAcknowledged(RegistryError):
    status, code = 409, "ALREADY_ACKNOWLEDGED"


class StoreUnavailable(RegistryError):
    status, code = 503, "STORE_UNAVAILABLE"

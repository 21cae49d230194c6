"""Commands as an agent sees them, and how a handler's outcome becomes an ack.

A handler takes a :class:`Command` and returns what the ack should say:

- ``None``: success, no message;
- a ``str``: success with that message;
- a ``dict``: success with those details;
- a :class:`Result`: the status, message and details it names.

A handler that raises is acknowledged as ``FAILURE`` with the exception's message;
raise :class:`CommandFailed` to add details.

A command can be cancelled by an operator while it waits or runs: a long handler should
look at ``command.cancelled`` now and then, or wait on ``command.wait_cancelled(t)``
instead of sleeping, and stop early. A cancelled command is not acknowledged (the server
has already recorded it ``CANCELLED``, and would refuse the ack).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

SUCCESS = "SUCCESS"
FAILURE = "FAILURE"


@dataclass(frozen=True, slots=True)
class Command:
    id: str
    type: str
    payload: dict[str, Any]
    issued_at: str | None = None
    expires_at: str | None = None
    _cancellation: threading.Event = field(
        default_factory=threading.Event, init=False, repr=False, compare=False
    )

    @property
    def cancelled(self) -> bool:
        """True once the server's ``cancel`` event for this command has arrived."""
        return self._cancellation.is_set()

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Block until the command is cancelled or ``timeout`` passes: ``cancelled``.

        Use it where a handler would sleep between steps, so a cancel stops it at once.
        """
        return self._cancellation.wait(timeout)

    def mark_cancelled(self) -> None:
        """The server cancelled it (the agent client calls this; handlers need not)."""
        self._cancellation.set()

    @classmethod
    def from_event(cls, event_type: str, data: str) -> Command:
        """The command in one SSE event's ``data`` (``ValueError`` if it is not one)."""
        return cls.from_data(event_type, json.loads(data))

    @classmethod
    def from_data(cls, event_type: str, body: object) -> Command:
        """The command that decoded event data (or signed content) describe."""
        if not isinstance(body, dict) or not isinstance(body.get("commandId"), str):
            raise ValueError("event data is not a command")
        payload = body.get("payload")
        return cls(
            id=body["commandId"],
            type=str(body.get("type") or event_type),
            payload=payload if isinstance(payload, dict) else {},
            issued_at=body.get("issuedAt"),
            expires_at=body.get("expiresAt"),
        )


@dataclass(frozen=True, slots=True)
class Result:
    status: str = SUCCESS
    message: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class CommandFailed(Exception):
    """Raise from a handler to acknowledge ``FAILURE`` with a message and details."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}


Handler = Callable[[Command], Result | str | dict[str, Any] | None]

MAX_MESSAGE = 4096


def run_handler(handler: Handler | None, command: Command) -> Result:
    """Run ``handler`` and turn whatever it returns or raises into the ack's result."""
    if handler is None:
        return Result(FAILURE, f"This agent has no handler for command type '{command.type}'.")
    try:
        # Handlers are the SDK user's code: take whatever they return, not what they declare.
        outcome: object = handler(command)
    except CommandFailed as exc:
        return Result(FAILURE, _message(exc), exc.details)
    except Exception as exc:
        log.warning("command %s (%s) failed: %r", command.id, command.type, exc)
        return Result(FAILURE, _message(exc))
    if outcome is None:
        return Result()
    if isinstance(outcome, Result):
        return outcome
    if isinstance(outcome, str):
        return Result(message=outcome[:MAX_MESSAGE])
    if isinstance(outcome, dict):
        return Result(details=outcome)
    return Result(message=str(outcome)[:MAX_MESSAGE])


def _message(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:MAX_MESSAGE]

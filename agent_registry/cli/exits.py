"""Exit codes, and the one-sentence failure every command ends with when it cannot succeed."""

from __future__ import annotations

import click

from ..client.api import ApiError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_REJECTED = 0, 1, 2, 3
EXIT_FAILED, EXIT_EXPIRED, EXIT_TIMEOUT, EXIT_NOT_ALLOWED = 4, 5, 6, 7
EXIT_CANCELLED, EXIT_STOPPED, EXIT_INTERRUPTED = 8, 9, 130
EXIT_CODES = """\b
Exit codes:
  0    every target acknowledged SUCCESS (without --wait: the command was accepted)
  1    the server could not be reached, or failed (5xx)
  2    wrong usage (bad option or --payload)
  3    rejected by the server (4xx: unknown agent, no LIVE targets, invalid request)
  4    at least one target acknowledged FAILURE
  5    at least one target EXPIRED without an ack (and none failed)
  6    --timeout passed before every target was final (and none failed or expired)
  7    the server refused the token (401: missing, invalid or expired; 403: not allowed)
  8    at least one target was CANCELLED (and none failed or expired)
  9    the rollout was STOPPED by its failure limit (--max-failures)
  130  interrupted (Ctrl-C); the command goes on on the server"""

OPERATOR_TOKEN = "operator token with --token or AGENT_REGISTRY_TOKEN"


class Failure(click.ClickException):
    """One sentence on stderr and a chosen exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        # click declares exit_code a ClassVar (one per exception class) but reads it from the
        # instance when it exits, so one class can carry every code.
        self.exit_code = exit_code  # type: ignore[misc]


def refused(exc: ApiError, token: str = OPERATOR_TOKEN) -> Failure:
    """A 401 or 403 as one sentence: the server's reason, then what to do about it."""
    if exc.status == 403:
        advice = "use a token whose role and groups allow it"
    else:
        advice = f"pass a valid {token}"
    return Failure(f"{exc.message.rstrip('.')} — {advice}.", EXIT_NOT_ALLOWED)

"""Following the operator event stream (``GET /api/v1/events``) as typed events.

``follow`` yields what the server sends (``FleetEvent``, ``AgentEvent``, ``CommandEvent``)
and, in between, ``StreamState`` when the connection opens or drops. A dropped stream, a
silent one (no byte for ``read_timeout``: the server pings while idle), a server that
cannot be reached or answers 5xx is retried with backoff (from the server's ``retry:``
delay, doubling up to 30 s); any other error answer (401, 403, 400) raises ``ApiError``.
Nothing is replayed by the server on reconnect: a consumer that needs complete lists
reads them again when ``StreamState.connected`` comes back.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from .api import API, ApiError, RegistryApi, unreachable
from .backoff import Backoff
from .stream import open_stream

log = logging.getLogger(__name__)

# Longer than the server's default keepalive (15 s) several times over.
READ_TIMEOUT = 60.0
RECONNECT_CAP = 30.0


@dataclass(frozen=True)
class FleetEvent:
    """Agents per state (``LIVE``, ``STALE``, ``DEAD``) and ``connected``, read ``at``."""

    counts: dict[str, int]
    at: str

    def as_json(self) -> dict[str, Any]:
        """The event as the server sent it: ``{"event": "fleet", "data": {...}}``."""
        return {"event": "fleet", "data": {**self.counts, "at": self.at}}


@dataclass(frozen=True)
class AgentEvent:
    """An agent as ``GET /api/v1/agents/{id}`` answers it (as it was, when ``deleted``)."""

    agent: dict[str, Any]

    @property
    def deleted(self) -> bool:
        return bool(self.agent.get("deleted"))

    def as_json(self) -> dict[str, Any]:
        return {"event": "agent", "data": self.agent}


@dataclass(frozen=True)
class CommandEvent:
    """A command as ``GET /api/v1/commands/{id}`` answers it, without ``deliveries``."""

    command: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"event": "command", "data": self.command}


@dataclass(frozen=True)
class StreamState:
    """The connection opened (``connected``), or dropped: ``reason``, and the seconds until
    the next attempt."""

    connected: bool
    reason: str | None = None
    retry_in: float | None = None
    attempt: int = 0  # how many attempts failed in a row


ServerEvent = FleetEvent | AgentEvent | CommandEvent
OperatorEvent = ServerEvent | StreamState


def parse(kind: str, data: str) -> ServerEvent | None:
    """One event of the stream; None for a kind this client does not know (a newer server)."""
    value = json.loads(data)
    if kind == "fleet":
        at = value.pop("at", "")
        return FleetEvent({k: int(v) for k, v in value.items()}, str(at))
    if kind == "agent":
        return AgentEvent(value)
    if kind == "command":
        return CommandEvent(value)
    return None


def follow(
    api: RegistryApi,
    group: str | None = None,
    *,
    reconnect: bool = True,
    read_timeout: float = READ_TIMEOUT,
    backoff: Backoff | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[OperatorEvent]:
    """The operator event stream, for ever (until the caller stops iterating), or until it
    first ends when ``reconnect`` is False."""
    backoff = backoff or Backoff(base=1.0, cap=RECONNECT_CAP)
    params = {"group": group} if group else None
    url = httpx.URL(API + "/events", params=params)
    while True:
        try:
            with open_stream(
                api.http, str(url), last_event_id=None, read_timeout=read_timeout, token=api.token
            ) as connection:
                backoff.reset()
                yield StreamState(connected=True)
                for sse in connection.events():
                    backoff.honour_retry(sse.retry)
                    if not sse.data:
                        continue
                    event = parse(sse.event, sse.data)
                    if event is not None:
                        yield event
                reason = "the server ended the stream"
        except ApiError as exc:
            if exc.status < 500:
                raise
            reason = exc.sentence()
        except httpx.TransportError as exc:
            reason = str(unreachable(api.base_url, exc))
        except httpx.StreamError as exc:
            reason = f"the stream broke ({type(exc).__name__})"
        if not reconnect:
            yield StreamState(connected=False, reason=reason)
            return
        delay = backoff.next_delay()
        log.info("operator events: %s; reconnecting in %.1f s", reason, delay)
        yield StreamState(connected=False, reason=reason, retry_in=delay, attempt=backoff.failures)
        sleep(delay)

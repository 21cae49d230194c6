"""The HTTP API as Python calls, shared by the agent SDK and the ops CLI.

Every failure comes out as one of two exceptions with a one-sentence message:
:class:`ServerUnreachable` (no answer: connection refused, timeout, broken connection)
and :class:`ApiError` (the server answered with its JSON error shape).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

if TYPE_CHECKING:
    from .operator_events import OperatorEvent

log = logging.getLogger(__name__)

API = "/api/v1"
PROTOCOL_HEADERS = {"X-Protocol-Version": "1"}
USER_AGENT = "agent-registry-python/0.1.0"


@dataclass(frozen=True)
class Rollout:
    """A staged send (API.md § Fleet operations): at most ``batch_size`` targets in flight
    (a count, or ``"10%"`` of the targets); stop when more than ``max_failures`` have
    FAILED or EXPIRED (None: no limit); a freed slot waits ``batch_interval`` seconds."""

    batch_size: int | str
    max_failures: int | str | None = None
    batch_interval: float = 0.0

    def json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"batchSize": self.batch_size}
        if self.max_failures is not None:
            body["maxFailures"] = self.max_failures
        if self.batch_interval:
            body["batchIntervalSeconds"] = self.batch_interval
        return body


class RegistryClientError(Exception):
    """Base of every error the client raises; ``str()`` is one clear sentence."""


class ServerUnreachable(RegistryClientError):
    """The server gave no answer (refused, timed out, connection broken)."""


class ApiError(RegistryClientError):
    """The server answered with an error status and its JSON error body."""

    def __init__(
        self, status: int, code: str, message: str, errors: dict[str, list[str]] | None = None
    ) -> None:
        self.status, self.code, self.message, self.errors = status, code, message, errors or {}
        super().__init__(self.sentence())

    def sentence(self) -> str:
        """The server's message, with each wrong field's reasons when it names them."""
        if not self.errors:
            return self.message
        details = "; ".join(f"{field}: {' '.join(why)}" for field, why in self.errors.items())
        return f"{self.message.rstrip('.')} — {details.rstrip('.')}."

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "message" not in body:
            reason = response.reason_phrase or "error"
            return cls(
                response.status_code,
                "UNKNOWN",
                f"The server answered {response.status_code} {reason} "
                f"to {response.request.method} {response.request.url.path}.",
            )
        return cls(
            response.status_code,
            str(body.get("code", "UNKNOWN")),
            str(body["message"]),
            body.get("errors") if isinstance(body.get("errors"), dict) else None,
        )


def segment(value: str) -> str:
    """A value as one URL path segment (ids are URL-safe; anything else stays one segment)."""
    return quote(value, safe="")


def bearer(token: str | None) -> dict[str, str]:
    """The ``Authorization`` header that carries ``token``; none without one."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The body of a successful answer that the API defines as one JSON object."""
    body: dict[str, Any] = response.json()
    return body


def unreachable(base_url: str, exc: httpx.HTTPError) -> ServerUnreachable:
    reason = str(exc) or type(exc).__name__
    return ServerUnreachable(f"Cannot reach the Agent Registry at {base_url}: {reason}.")


@cache
def default_tls() -> ssl.SSLContext:
    """One TLS context for the process: building one costs ~30 ms, and a simulated fleet
    creates a client per agent."""
    return httpx.create_ssl_context()


class RegistryApi:
    """Thin, thread-safe wrapper over one ``httpx.Client``; close it (or use ``with``)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        verify: ssl.SSLContext | None = None,
        transport: httpx.BaseTransport | None = None,
        token: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            headers={**PROTOCOL_HEADERS, "User-Agent": USER_AGENT},
            verify=verify or default_tls(),
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> RegistryApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One request with ``token`` (else the client's own) as its bearer token; an error
        status raises :class:`ApiError`, no answer :class:`ServerUnreachable`."""
        headers = bearer(token or self.token)
        try:
            response = self.http.request(method, API + path, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc
        if response.status_code >= 400:
            raise ApiError.from_response(response)
        return response

    # Agents -------------------------------------------------------------------------------

    def register(self, registration: dict[str, Any], token: str | None = None) -> dict[str, Any]:
        """Register with ``token``: an enrollment token, or the agent's own to renew it."""
        answer = self.request("POST", "/agents/register", json=registration, token=token)
        return json_object(answer)

    def heartbeat(self, agent_id: str, token: str | None = None) -> None:
        self.request("POST", f"/agents/{segment(agent_id)}/heartbeat", token=token)

    def agent(self, agent_id: str) -> dict[str, Any]:
        return json_object(self.request("GET", f"/agents/{segment(agent_id)}"))

    def agents(
        self, *, status: str | None = None, group: str | None = None, page_size: int = 1000
    ) -> list[dict[str, Any]]:
        """Every matching agent, fetched page by page (keyset paging on ``after``)."""
        params: dict[str, Any] = {"limit": page_size}
        if status:
            params["status"] = status
        if group:
            params["group"] = group
        found: list[dict[str, Any]] = []
        while True:
            page = self.request("GET", "/agents", params=params).json()
            found.extend(page)
            if len(page) < page_size:
                return found
            params["after"] = page[-1]["id"]

    # Commands -----------------------------------------------------------------------------

    def send(
        self,
        command_type: str,
        payload: dict[str, Any] | None = None,
        *,
        agent: str | None = None,
        group: str | None = None,
        deliver_on_connect: bool = False,
        rollout: Rollout | None = None,
    ) -> dict[str, Any]:
        """Send to one agent, a group's LIVE agents, or (neither given) every LIVE agent.

        ``deliver_on_connect``: a target whose stream opens later, while its delivery is
        still PENDING, gets the command then (agents reconnecting during a deploy).
        ``rollout`` (a group or everyone): send it a sliding window of targets at a time."""
        if agent is not None:
            path = f"/agents/{segment(agent)}/commands"
        elif group is not None:
            path = f"/agents/groups/{segment(group)}/commands"
        else:
            path = "/agents/commands"
        body: dict[str, Any] = {"type": command_type, "payload": payload or {}}
        if deliver_on_connect:
            body["deliverOnConnect"] = True
        if rollout is not None:
            body["rollout"] = rollout.json()
        return json_object(self.request("POST", path, json=body))

    def command(self, command_id: str) -> dict[str, Any]:
        return json_object(self.request("GET", f"/commands/{segment(command_id)}"))

    def ack(
        self,
        agent_id: str,
        command_id: str,
        status: str = "SUCCESS",
        message: str | None = None,
        details: dict[str, Any] | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"status": status, "details": details or {}}
        if message is not None:
            body["message"] = message
        path = f"/agents/{segment(agent_id)}/commands/{segment(command_id)}/ack"
        return json_object(self.request("POST", path, json=body, token=token))

    # The operator event stream ----------------------------------------------------------

    def operator_events(self, group: str | None = None, **options: Any) -> Iterator[OperatorEvent]:
        """Follow ``GET /api/v1/events``: typed events, and the connection's state between
        them, reconnecting with backoff (``operator_events.follow`` has the options)."""
        from .operator_events import follow  # it builds on this module

        return follow(self, group, **options)

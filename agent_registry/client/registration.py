"""Being registered: the first time, again whenever the server has forgotten the agent or
refused its token, and again at half the agent token's lifetime to renew it.

Several threads may learn at once that the registration is gone (a heartbeat and the event
stream both get ``404`` after a server restart, or ``401`` once a clone of this agent took
the id over). Each holds the :class:`Registration` it used; only a loss reported against
the current one counts, so a late report does not register twice.

With auth on, the first registration carries the enrollment token; the answer's agent
token then carries every request as this agent, and renewing registers with that token.
A renewal the server refuses, and any ``401`` as this agent, mean enrolling again.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .api import ApiError, RegistryApi, ServerUnreachable
from .backoff import Backoff
from .signatures import ServerKeys

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Registration:
    """What one registration answer gave the agent."""

    generation: int  # counts this client's registrations, renewals included
    config: dict[str, Any]
    sse_endpoint: str | None
    token: str | None = None  # the agent token (auth on): sent with every request as the agent
    renew_at: float | None = None  # time.monotonic() at which to renew the token
    keys: ServerKeys | None = None  # the published keys (signing on): every event must verify

    @classmethod
    def of(cls, answer: dict[str, Any], generation: int) -> Registration:
        token, expires_at = answer.get("accessToken"), answer.get("accessTokenExpiresAt")
        config = answer.get("config") or {}
        renew_at = None
        if token and expires_at:
            lifetime = datetime.fromisoformat(expires_at).timestamp() - time.time()
            # Not sooner than a heartbeat: a clock far ahead of the server's must not make
            # the agent register in a loop.
            floor = float(config.get("heartbeatIntervalSeconds") or 0)
            renew_at = time.monotonic() + max(lifetime / 2, floor)
        return cls(
            generation,
            config,
            answer.get("sseEndpoint"),
            token or None,
            renew_at,
            ServerKeys.published(answer),
        )

    def renew_in(self) -> float | None:
        """Seconds until the token is due for renewal (None: nothing to renew)."""
        return None if self.renew_at is None else self.renew_at - time.monotonic()


class Registrar:
    def __init__(
        self,
        api: RegistryApi,
        body: dict[str, Any],
        stopping: threading.Event,
        backoff: Backoff,
        enrollment_token: str | None = None,
    ) -> None:
        self.api, self.body, self.stopping, self.backoff = api, body, stopping, backoff
        self.enrollment_token = enrollment_token
        self.agent_id: str = body["id"]
        self.current: Registration | None = None  # the latest; read without the lock
        self._registered = threading.Event()
        self._lock = threading.Lock()

    @property
    def registered(self) -> bool:
        return self._registered.is_set()

    @property
    def generation(self) -> int:
        return self.current.generation if self.current else 0

    def ensure(self) -> Registration | None:
        """Register unless registered; retry with backoff. The registration, None on stop."""
        with self._lock:
            while not self.stopping.is_set():
                if self._registered.is_set() and self.current is not None:
                    return self.current
                try:
                    return self._register(self.enrollment_token, "registered")
                except ServerUnreachable as exc:
                    log.warning("agent %s: cannot register: %s", self.agent_id, exc)
                except ApiError as exc:
                    log.error(
                        "agent %s: registration refused (%s): %s", self.agent_id, exc.code, exc
                    )
                self.stopping.wait(self.backoff.next_delay())
            return None

    def lost(self, registration: Registration) -> None:
        """The server answered 404 or 401 to something done under ``registration``."""
        with self._lock:
            if registration.generation == self.generation and self._registered.is_set():
                log.info(
                    "agent %s: the server no longer accepts its registration; registering again",
                    self.agent_id,
                )
                self._registered.clear()

    def renew(self, registration: Registration, why: str) -> None:
        """Register again with the agent's own token (at half its lifetime, or to learn the
        server's current keys). Refused: enroll again; no answer: retry with backoff."""
        with self._lock:
            if registration.generation != self.generation or not self._registered.is_set():
                return  # registered again meanwhile
            try:
                self._register(registration.token or self.enrollment_token, f"renewed ({why})")
                return
            except ApiError as exc:
                if exc.status in (401, 403):
                    log.info(
                        "agent %s: renewal refused (%s); enrolling again", self.agent_id, exc.code
                    )
                    self._registered.clear()
                    return
                problem: Exception = exc
            except ServerUnreachable as exc:
                problem = exc
            delay = self.backoff.next_delay()
            log.warning(
                "agent %s: cannot renew (%s): %s; trying again in %.0f s",
                self.agent_id,
                why,
                problem,
                delay,
            )
            if registration.renew_at is not None:
                self.current = dataclasses.replace(registration, renew_at=time.monotonic() + delay)

    def _register(self, token: str | None, done: str) -> Registration:
        answer = self.api.register(self.body, token=token)
        self.current = Registration.of(answer, self.generation + 1)
        self.backoff.reset()
        self._registered.set()
        log.info("agent %s: %s (group %s)", self.agent_id, done, self.body["group"])
        return self.current

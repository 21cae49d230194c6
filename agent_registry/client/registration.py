"""Being registered: the first time, and again whenever the server has forgotten the agent.

Several threads may learn at once that the server forgot us (a heartbeat and the event
stream both get ``404`` after a server restart). Each holds the *generation* of the
registration it used; only a loss reported against the current generation counts, so a
late report does not register twice.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from .api import ApiError, RegistryApi, ServerUnreachable
from .backoff import Backoff

log = logging.getLogger(__name__)


class Registrar:
    def __init__(
        self, api: RegistryApi, body: dict[str, Any], stopping: threading.Event, backoff: Backoff
    ) -> None:
        self.api, self.body, self.stopping, self.backoff = api, body, stopping, backoff
        self.agent_id: str = body["id"]
        self.config: dict[str, Any] = {}
        self.sse_endpoint: str | None = None
        self.generation = 0
        self._registered = threading.Event()
        self._lock = threading.Lock()

    @property
    def registered(self) -> bool:
        return self._registered.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._registered.wait(timeout)

    def ensure(self) -> int | None:
        """Register unless registered; retry with backoff. The generation, or None on stop."""
        with self._lock:
            while not self.stopping.is_set():
                if self._registered.is_set():
                    return self.generation
                if self._register_once():
                    return self.generation
                self.stopping.wait(self.backoff.next_delay())
            return None

    def lost(self, generation: int) -> None:
        """The server answered 404 to something done under ``generation``."""
        with self._lock:
            if generation == self.generation and self._registered.is_set():
                log.info(
                    "agent %s: the server no longer knows it; registering again", self.agent_id
                )
                self._registered.clear()

    def _register_once(self) -> bool:
        try:
            answer = self.api.register(self.body)
        except ServerUnreachable as exc:
            log.warning("agent %s: cannot register: %s", self.agent_id, exc)
            return False
        except ApiError as exc:
            log.error("agent %s: registration refused (%s): %s", self.agent_id, exc.code, exc)
            return False
        self.config = answer.get("config") or {}
        self.sse_endpoint = answer.get("sseEndpoint")
        self.generation += 1
        self.backoff.reset()
        self._registered.set()
        log.info("agent %s: registered (group %s)", self.agent_id, self.body["group"])
        return True

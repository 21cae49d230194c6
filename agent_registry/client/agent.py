"""``AgentClient``: register, heartbeat, hold the event stream, run handlers, acknowledge.

Three threads (greenlets when gevent has patched ``threading``) share the work:

- *stream*: keeps the event stream open; on any end it reconnects after an exponential
  backoff with jitter whose base is the server's ``retry:``; sends ``Last-Event-ID``;
  a ``404`` (the server forgot the agent) or ``401`` (its token is no longer good) means
  register again and reconnect at once. Each event is checked (signatures.py) first.
- *heartbeat*: pings at the interval the server returned, renews the agent token at half
  its lifetime; a ``404`` or ``401`` registers again.
- *commands*: runs each command's handler in arrival order and acknowledges the result,
  so a slow handler never stalls the stream. A ``cancel`` event marks the command
  cancelled (``Command.cancelled``): one still queued is not run, one running can stop,
  and neither is acknowledged.

``stop()`` ends the stream, finishes the commands already received, and joins every thread.
"""

from __future__ import annotations

import json
import logging
import queue
import signal
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import FrameType
from typing import Any

import httpx
from httpx_sse import ServerSentEvent

from .api import API, ApiError, RegistryApi, ServerUnreachable, segment
from .backoff import Backoff
from .commands import Command, Handler, Result, run_handler
from .registration import Registrar, Registration
from .signatures import EventChecker, Rejected, Repeated, UnknownKey
from .stream import StreamConnection, open_stream

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_SECONDS = 30.0
DEFAULT_KEEPALIVE_SECONDS = 15.0
ACK_ATTEMPTS = 3
KEY_REFRESH_SECONDS = 30.0
# What the server answers a request whose registration it no longer accepts: 404 (it
# forgot the agent), 401 (auth on: the agent's token is stale, or the agent was deleted).
REGISTER_AGAIN = frozenset({401, 404})


class AgentClient:
    """One agent's connection to the registry. Add handlers, then ``start()`` or ``run()``."""

    def __init__(
        self,
        url: str,
        agent_id: str,
        group: str,
        *,
        name: str | None = None,
        version: str | None = None,
        route_ids: Iterable[str] = (),
        capabilities: dict[str, Any] | None = None,
        handlers: Mapping[str, Handler] | None = None,
        enrollment_token: str | None = None,
        timeout: float = 10.0,
        max_backoff: float = 60.0,
        verify: ssl.SSLContext | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.agent_id = agent_id
        self.api = RegistryApi(url, timeout=timeout, verify=verify, transport=transport)
        self.handlers: dict[str, Handler] = dict(handlers or {})
        body: dict[str, Any] = {
            "id": agent_id,
            "group": group,
            "version": version,
            "routeIds": list(route_ids),
            "capabilities": capabilities or {},
        }
        if name is not None:
            body["name"] = name
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self.registrar = Registrar(
            self.api, body, self._stopping, Backoff(1.0, max_backoff), enrollment_token
        )
        self.checker = EventChecker(agent_id, group)
        self._keys_learnt_at: float | None = None  # time.monotonic(); stream thread only
        self._stream_backoff = Backoff(1.0, max_backoff)
        self._queue: queue.Queue[Command | None] = queue.Queue()
        self._lock = threading.Lock()
        self._connection: StreamConnection | None = None
        self._threads: list[threading.Thread] = []
        self._in_hand: dict[str, Command] = {}  # queued or running, by id; under _lock
        self.last_event_id: str | None = None
        self.commands_handled = 0
        self.commands_failed = 0
        self.commands_cancelled = 0

    # Setting up ---------------------------------------------------------------------------

    def handler(self, command_type: str) -> Callable[[Handler], Handler]:
        """Decorator: ``@agent.handler("deep-trace")`` runs the function for that type."""

        def register(function: Handler) -> Handler:
            self.handlers[command_type] = function
            return function

        return register

    # State --------------------------------------------------------------------------------

    @property
    def registered(self) -> bool:
        return self.registrar.registered

    @property
    def connected(self) -> bool:
        """True while the event stream is open (its opening bytes were read)."""
        return self._connected.is_set()

    @property
    def config(self) -> dict[str, Any]:
        """The ``config`` of the last registration answer (intervals, in seconds)."""
        current = self.registrar.current
        return current.config if current else {}

    @property
    def registrations(self) -> int:
        return self.registrar.generation

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until registered with the event stream open; False if ``timeout`` passed."""
        return self._connected.wait(timeout)

    # Running ------------------------------------------------------------------------------

    def start(self) -> AgentClient:
        """Start the background threads and return at once (see ``wait_ready``)."""
        if self._threads or self._stopping.is_set():
            raise RuntimeError("an AgentClient starts once; create a new one to start again")
        for name, target in (
            ("stream", self._stream_loop),
            ("heartbeat", self._heartbeat_loop),
            ("commands", self._command_loop),
        ):
            thread = threading.Thread(
                target=target, name=f"agent-{self.agent_id}-{name}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """End the stream, finish and acknowledge commands already received, join threads."""
        if self._stopping.is_set() and not self._threads:
            return
        self._stopping.set()
        with self._lock:
            connection = self._connection
        if connection is not None:
            connection.abort()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread.name.endswith("-commands"):
                # Received commands are still handled and acknowledged, then it ends.
                self._queue.put(None)
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("agent %s: thread %s did not stop in time", self.agent_id, thread.name)
        self._threads.clear()
        self.api.close()
        log.info("agent %s: stopped", self.agent_id)

    def run(self) -> None:
        """Start, block until Ctrl-C, SIGTERM or ``stop()`` from elsewhere, then stop."""
        restore = self._stop_on_sigterm()
        self.start()
        try:
            while not self._stopping.wait(0.5):
                pass
        except KeyboardInterrupt:
            log.info("agent %s: interrupted", self.agent_id)
        finally:
            self.stop()
            restore()

    def __enter__(self) -> AgentClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _stop_on_sigterm(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            self._stopping.set()

        previous = signal.signal(signal.SIGTERM, on_sigterm)

        def restore() -> None:
            signal.signal(signal.SIGTERM, previous)

        return restore

    # The event stream ---------------------------------------------------------------------

    def _stream_loop(self) -> None:
        backoff = self._stream_backoff
        retry_at_once = True
        while (registration := self.registrar.ensure()) is not None:
            forgotten = False
            try:
                self._hold_stream(backoff, registration)
            except ApiError as exc:
                forgotten = exc.status in REGISTER_AGAIN
                if forgotten:
                    self.registrar.lost(registration)
                else:
                    log.warning("agent %s: event stream refused: %s", self.agent_id, exc)
            except httpx.TransportError as exc:
                if not self._stopping.is_set():
                    log.warning("agent %s: event stream lost: %r", self.agent_id, exc)
            except Exception:  # a bug must not end the agent's stream for good
                log.exception("agent %s: event stream failed", self.agent_id)
            finally:
                self._connected.clear()
            if self._stopping.is_set():
                return
            # Forgotten by the server: register again and reconnect at once (but only
            # once in a row, so a server that keeps answering 404 is not hammered). The
            # same when the agent registered again (renewed) while the stream was open:
            # a server may end a stream opened with a token that is no longer current.
            if self.registrar.generation != registration.generation:
                forgotten = True
            if forgotten and retry_at_once:
                retry_at_once = False
                continue
            retry_at_once = True
            if self._stopping.wait(backoff.next_delay()):
                return
            log.debug("agent %s: reconnecting", self.agent_id)

    def _hold_stream(self, backoff: Backoff, registration: Registration) -> None:
        config = registration.config
        keepalive = float(config.get("keepaliveSeconds") or DEFAULT_KEEPALIVE_SECONDS)
        url = registration.sse_endpoint or f"{API}/agents/{segment(self.agent_id)}/events"
        with open_stream(
            self.api.http,
            url,
            last_event_id=self.last_event_id,
            read_timeout=3 * keepalive + 5,
            token=registration.token,
        ) as connection:
            with self._lock:
                if self._stopping.is_set():
                    return
                self._connection = connection
            try:
                for event in connection.events():
                    self._on_event(event, backoff)
            finally:
                with self._lock:
                    self._connection = None
        if not self._stopping.is_set():
            log.info("agent %s: the server ended the event stream", self.agent_id)

    def _on_event(self, event: ServerSentEvent, backoff: Backoff) -> None:
        backoff.honour_retry(event.retry)
        if not self._connected.is_set():
            backoff.reset()
            self._connected.set()
            log.info("agent %s: event stream open", self.agent_id)
        if event.id:
            self.last_event_id = event.id
        if not event.data:
            return
        if event.event == "cancel":
            self._on_cancel(event.data)
            return
        command = self._checked(event)
        if command is not None:
            with self._lock:
                self._in_hand[command.id] = command
            self._queue.put(command)

    def _on_cancel(self, data: str) -> None:
        try:
            command_id = json.loads(data)["commandId"]
        except (ValueError, KeyError, TypeError):
            command_id = None
        if not isinstance(command_id, str):
            log.warning(
                "agent %s: ignoring a cancel event without a commandId: %.200s", self.agent_id, data
            )
            return
        with self._lock:
            command = self._in_hand.get(command_id)
        if command is None:
            log.info(
                "agent %s: the server cancelled %s, which is not queued or running here",
                self.agent_id,
                command_id,
            )
            return
        command.mark_cancelled()
        self.commands_cancelled += 1
        log.info("agent %s: the server cancelled command %s", self.agent_id, command_id)

    def _checked(self, event: ServerSentEvent) -> Command | None:
        """The event's command if it may run; else None, logged (and never acknowledged:
        its delivery expires on the server, where an operator sees it)."""
        registration = self.registrar.current
        try:
            if registration is None:  # cannot happen: the stream opens once registered
                raise Rejected("the agent is not registered")
            try:
                return self.checker.command(event.event, event.data, registration.keys)
            except UnknownKey as exc:
                registration = self._learn_keys(registration, exc)
                return self.checker.command(event.event, event.data, registration.keys)
        except Repeated as exc:
            log.info("agent %s: ignoring event %s: %s", self.agent_id, event.id, exc)
        except Rejected as exc:
            log.warning(
                "agent %s: not running event %s: %s: %.200s",
                self.agent_id,
                event.id,
                exc,
                event.data,
            )
        return None

    def _learn_keys(self, registration: Registration, unknown: UnknownKey) -> Registration:
        """Register again to learn the server's current keys; at most once per
        ``KEY_REFRESH_SECONDS``, so that events signed with a key the server never
        publishes (workers with different key files) cost no registration each."""
        now = time.monotonic()
        if self._keys_learnt_at is not None and now - self._keys_learnt_at < KEY_REFRESH_SECONDS:
            raise Rejected(f"{unknown}, even after registering again") from None
        self._keys_learnt_at = now
        log.info("agent %s: %s; registering again to learn the keys", self.agent_id, unknown)
        self.registrar.renew(registration, "new signing key")
        current = self.registrar.ensure()
        if current is None:
            raise Rejected("the agent stopped before it learnt the keys") from None
        return current

    # Heartbeats ---------------------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        failing = False  # log the first failure of an outage, not one per interval
        while (registration := self.registrar.ensure()) is not None:
            interval = float(
                registration.config.get("heartbeatIntervalSeconds") or DEFAULT_HEARTBEAT_SECONDS
            )
            renew_in = registration.renew_in()
            if renew_in is not None and renew_in <= interval:
                # Registering again is a heartbeat too: the renewal takes this one's turn.
                if self._stopping.wait(max(renew_in, 0.0)):
                    return
                self.registrar.renew(registration, "half its lifetime")
                continue
            if self._stopping.wait(interval):
                return
            try:
                self.api.heartbeat(self.agent_id, token=registration.token)
            except ApiError as exc:
                if exc.status in REGISTER_AGAIN:
                    self.registrar.lost(registration)
                    continue
                problem = f"heartbeat refused: {exc}"
            except ServerUnreachable as exc:
                problem = f"heartbeat failed: {exc}"
            except Exception as exc:  # a bug must not end the heartbeats for good
                log.exception("agent %s: heartbeat failed", self.agent_id)
                problem = f"heartbeat failed: {exc!r}"
            else:
                if failing:
                    log.info("agent %s: heartbeats get through again", self.agent_id)
                failing = False
                continue
            log.log(
                logging.DEBUG if failing else logging.WARNING,
                "agent %s: %s",
                self.agent_id,
                problem,
            )
            failing = True

    # Commands -----------------------------------------------------------------------------

    def _command_loop(self) -> None:
        while (command := self._queue.get()) is not None:
            try:
                self._handle(command)
            finally:
                with self._lock:
                    self._in_hand.pop(command.id, None)

    def _handle(self, command: Command) -> None:
        result = self._run(command)
        if result is None:
            return
        if command.cancelled:
            # The server recorded CANCELLED and would answer the ack 409.
            log.info(
                "agent %s: not acknowledging %s: it was cancelled while it ran",
                self.agent_id,
                command.id,
            )
            return
        try:
            self._acknowledge(command, result)
        except Exception:  # one bad ack must not stop the commands behind it
            log.exception("agent %s: could not acknowledge %s", self.agent_id, command.id)

    def _run(self, command: Command) -> Result | None:
        """The handler's result; None when the command was cancelled before its turn."""
        if command.cancelled:
            log.info("agent %s: not running %s: it was cancelled", self.agent_id, command.id)
            return None
        result = run_handler(self.handlers.get(command.type), command)
        self.commands_handled += 1
        if result.status != "SUCCESS":
            self.commands_failed += 1
        return result

    def _acknowledge(self, command: Command, result: Result) -> None:
        registration = self.registrar.current
        for attempt in range(1, ACK_ATTEMPTS + 1):
            try:
                self.api.ack(
                    self.agent_id,
                    command.id,
                    result.status,
                    result.message,
                    result.details,
                    token=registration.token if registration else None,
                )
                return
            except ApiError as exc:
                if exc.status == 401 and registration is not None:
                    # Its token went stale while the handler ran: register, then try again.
                    self.registrar.lost(registration)
                    registration = self.registrar.ensure()
                    reason = str(exc)
                elif exc.status < 500:
                    # COMMAND_CANCELLED: the cancel event and this ack crossed; expected.
                    log.log(
                        logging.INFO if exc.code == "COMMAND_CANCELLED" else logging.WARNING,
                        "agent %s: ack of %s refused: %s",
                        self.agent_id,
                        command.id,
                        exc,
                    )
                    return
                else:
                    reason = str(exc)
            except ServerUnreachable as exc:
                reason = str(exc)
            if attempt == ACK_ATTEMPTS or self._stopping.is_set():
                log.error(
                    "agent %s: could not acknowledge %s: %s", self.agent_id, command.id, reason
                )
                return
            time.sleep(0.5 * attempt)

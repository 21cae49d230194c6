"""The bus across processes: Redis pub/sub says "look now" (and, for a command, to whom);
the store says what.

One subscriber greenlet per worker fans out to the local hub (never a Redis connection
per stream). A message lost while the subscriber reconnects loses nothing: after every
(re)connect the subscriber re-reads the commands still inside their expiry window and
queues what is PENDING for streams it holds that were open when the command was made.
The same greenlet pair also renews this worker's presence claims.

Nothing one message does stops the subscriber: a message or a caught-up command whose
handling fails (other than by an outage, which reconnects) is logged once, with its
command id, and skipped. Should the loop itself fail, it starts again after a backoff.
While it is not subscribed, ``relays()`` is False: ``/readyz`` names the ``bus`` check,
and the monitor (the metrics) is told.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol

import gevent
import redis
from redis.client import PubSub

from ..clock import Clock
from ..core.models import Command, CommandSnapshot, DeliveryStatus
from ..core.ports import FleetNotices, RecentCommands, SharedPresence
from ..errors import StoreUnavailable
from ..streams.hub import StreamHub, cancel_key
from ..streams.sse import Signer, cancel_frame, command_frame
from .client import OUTAGE_ERRORS, ReportsOutages

log = logging.getLogger(__name__)

CHANNEL = "ar:bus"
# The most targets an announcement names: an id is at most 128 characters, so a message
# stays under 1.3 MB (Redis drops a subscriber more than 32 MB behind). A command to more
# is announced by its id, and each other process reads its deliveries whole.
ANNOUNCED_TARGETS = 10_000
# What makes the subscriber reconnect: Redis gone under the pub/sub connection, or under a
# store read it makes (the store reports those as StoreUnavailable).
RECONNECT_ON: tuple[type[Exception], ...] = (*OUTAGE_ERRORS, StoreUnavailable)
_CATCH_UP_LIMIT = 10_000
# Waits between attempts: doubled from the first, up to the cap (an outage reconnects
# sooner than a failure restarts: each restart logs a traceback). Back to the first once a
# subscription held for a while.
_FIRST_BACKOFF = 0.1
_OUTAGE_BACKOFF_CAP = 5.0
_FAILURE_BACKOFF_CAP = 30.0
_HELD_SECONDS = 10.0
# How long a subscription may wait for Redis to confirm it before reconnecting.
_CONFIRM_SECONDS = 5.0
# Skipped commands remembered, so that one re-read at every catch-up is logged once.
_REMEMBERED_SKIPS = 1_000


class BusMonitor(Protocol):
    """Told how the subscriber fares (the metrics)."""

    def subscribed(self, now: bool) -> None: ...

    def restarted(self) -> None: ...

    def skipped(self) -> None: ...


class RedisBus(ReportsOutages):
    def __init__(
        self,
        client: redis.Redis,
        hub: StreamHub,
        commands: RecentCommands,
        clock: Clock,
        refresh_every: float,
        signer: Signer | None = None,
    ) -> None:
        self._redis = client
        self._signer = signer
        self._hub = hub
        self._commands = commands
        self._clock = clock
        self._refresh_every = refresh_every
        self.origin = uuid.uuid4().hex
        self.presence: SharedPresence | None = None
        # The operator event stream's side: told what other processes announced.
        self._fleet_notices: FleetNotices | None = None
        self._greenlets: list[gevent.Greenlet[[], None]] = []
        self._running = False
        self._subscribed = False
        self._subscribed_at = 0.0
        self._held_for = 0.0  # how long the last subscription held
        self._monitor: BusMonitor | None = None
        self.restarts = 0  # the subscriber loop failed and started again
        self.skipped = 0  # messages and caught-up commands whose handling failed
        self._skipped_ids: OrderedDict[str, None] = OrderedDict()

    # -- health --

    def relays(self) -> bool:
        """Whether commands published by other processes reach this one's streams: True
        while the subscriber is subscribed, and while it is not meant to run (not started
        yet, or stopped: the worker is shutting down)."""
        return self._subscribed or not self._running

    def watch(self, monitor: BusMonitor) -> None:
        self._monitor = monitor
        monitor.subscribed(self._subscribed)

    def _set_subscribed(self, now: bool) -> None:
        if now != self._subscribed:
            self._subscribed = now
            if now:
                self._subscribed_at = time.monotonic()
            else:
                self._held_for = time.monotonic() - self._subscribed_at
            if self._monitor is not None:
                self._monitor.subscribed(now)

    # -- publishing (any greenlet) --

    def publish(
        self, command: Command, agent_ids: Sequence[str], sent_at: float | None = None
    ) -> None:
        """Write the command to the targets streaming here and tell the other processes.

        The announcement names the targets and when they were sent (a command without a
        rollout: at creation; a rollout: this batch): the others read the deliveries of
        only those they hold, and write it to the ones still PENDING. Reading every
        delivery cost each other worker 14 ms of CPU per broadcast to 2 000 agents
        (docs/performance.md). Past ``ANNOUNCED_TARGETS`` targets the announcement names
        the command alone, which the others read whole, so that no message is large.
        """
        self._hub.deliver_first(agent_ids, command.id, command_frame(command, self._signer))
        if len(agent_ids) > ANNOUNCED_TARGETS:
            self._announce({"command": command.id})
            return
        sent = command.created_at if sent_at is None else sent_at
        self._announce({"command": command.id, "agents": list(agent_ids), "sentAt": sent})

    def end_stream(self, agent_id: str, token: str) -> None:
        """Ask whichever process holds the stream with ``token`` to end it (replaced)."""
        self._hub.end(agent_id, token)
        self._announce({"end": agent_id, "token": token})

    def disconnect(self, agent_id: str) -> None:
        """End the agent's stream, whichever process holds it (the agent was deleted)."""
        self._hub.end(agent_id)
        self._announce({"disconnect": agent_id})

    def cancel(self, command_id: str, agent_ids: Sequence[str]) -> None:
        """Write the command's cancel event to these agents' streams, in every process.

        The ids travel with the announcement: only the deliveries this process cancelled
        get the event, and no process reads the store for it.
        """
        self._hub.deliver(agent_ids, cancel_key(command_id), cancel_frame(command_id))
        self._announce({"cancel": command_id, "agents": list(agent_ids)})

    def supersede(self, agent_id: str, generation: int) -> None:
        """End, on every process, the agent's stream opened with an older token."""
        self._hub.supersede(agent_id, generation)
        self._announce({"supersede": agent_id, "generation": str(generation)})

    def announce_fleet(self, notice: dict[str, Any]) -> None:
        """Which agents and commands changed here (the operator event stream): the other
        processes read their state for their own operator streams."""
        self._announce({"fleet": notice})

    def relay_fleet_to(self, notices: FleetNotices) -> None:
        self._fleet_notices = notices

    def _announce(self, message: dict[str, Any]) -> None:
        try:
            self._redis.publish(CHANNEL, json.dumps({"origin": self.origin, **message}))
        except OUTAGE_ERRORS as exc:
            # The outage is logged once, by the runtime's StoreOutage; this only counts it.
            self._store_failed("bus: announce", exc)
            log.debug(
                "bus: could not announce %s (store unavailable); other workers catch "
                "up when they reconnect",
                message,
                extra=_ids(message),
            )

    # -- the worker's background greenlets --

    def start(self) -> None:
        if not self._greenlets:
            self._running = True
            if self._monitor is not None:
                self._monitor.subscribed(False)  # until Redis confirms the subscription
            self._greenlets = [
                gevent.spawn(self._subscribe_forever),
                gevent.spawn(self._refresh_forever),
            ]

    def stop(self) -> None:
        self._running = False
        gevent.killall(self._greenlets, timeout=2)
        self._greenlets = []
        self._set_subscribed(False)

    def _subscribe_forever(self) -> None:
        backoff = _FIRST_BACKOFF
        while True:
            self._held_for = 0.0
            cap = _OUTAGE_BACKOFF_CAP
            try:
                self._subscribe_once()
            except RECONNECT_ON as exc:
                if not isinstance(exc, StoreUnavailable):  # a store read counted it already
                    self._store_failed("bus: subscriber", exc)
                log.debug("bus: subscriber lost Redis (%s); reconnecting in %.1fs", exc, backoff)
            except Exception:
                cap = _FAILURE_BACKOFF_CAP
                self.restarts += 1
                if self._monitor is not None:
                    self._monitor.restarted()
                log.exception(
                    "bus: the subscriber failed; it starts again in %.1f s, and until then "
                    "commands sent through other workers do not reach this worker's streams",
                    backoff,
                )
            if self._held_for >= _HELD_SECONDS:  # it worked for a while: a new failure
                backoff = _FIRST_BACKOFF
            gevent.sleep(backoff)
            backoff = min(backoff * 2, cap)

    def _subscribe_once(self) -> None:
        """Subscribe, catch up, relay; returns only by raising (an outage, or a failure)."""
        # Older redis-py leaves Redis.pubsub unannotated (8.2 annotates it): a typed PubSub.
        pubsub: PubSub = self._redis.pubsub()  # type: ignore[no-untyped-call, unused-ignore]
        try:
            pubsub.subscribe(CHANNEL)
            _await_confirmation(pubsub)
            self._store_answered()
            self._set_subscribed(True)
            log.info("bus: subscribed to %s", CHANNEL)
            self.catch_up()
            while True:
                message = pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                if message["type"] == "message":
                    self.handle(message["data"])
                elif message["type"] == "subscribe":
                    # redis-py reconnected a dropped connection and subscribed again by
                    # itself: what was published meanwhile is lost, so catch up again.
                    log.info("bus: subscribed to %s again", CHANNEL)
                    self.catch_up()
        finally:
            self._set_subscribed(False)
            pubsub.close()

    def _refresh_forever(self) -> None:
        while True:
            gevent.sleep(self._refresh_every)
            if self.presence is None:
                continue
            try:
                replaced_streams = self.presence.refresh(self._hub.subscriptions())
            except OUTAGE_ERRORS as exc:
                self._store_failed("presence: renew", exc)
                log.debug(
                    "presence: could not renew %d stream(s) (store unavailable)", len(self._hub)
                )
                continue
            except Exception:
                log.exception("presence: renewing the claims failed; trying again next time")
                continue
            if len(self._hub):
                self._store_answered()
            for replaced in replaced_streams:
                log.info(
                    "agent %s: stream replaced in another process",
                    replaced.agent_id,
                    extra={"agent_id": replaced.agent_id},
                )
                replaced.end()

    # -- what the subscriber does --

    def handle(self, data: str) -> None:
        """One message from the channel. Raises only what the subscriber reconnects on; any
        other failure skips the message."""
        try:
            message = json.loads(data)
            if message.get("origin") == self.origin:
                return
            if "end" in message:
                self._hub.end(message["end"], message["token"])
            elif "disconnect" in message:
                self._hub.end(message["disconnect"])
            elif "cancel" in message and len(self._hub):
                self._deliver_cancel(message["cancel"], message["agents"])
            elif "supersede" in message:
                self._hub.supersede(message["supersede"], int(message["generation"]))
            elif "command" in message and "agents" in message and len(self._hub):
                self._deliver_batch(message["command"], message["agents"], message["sentAt"])
            elif "command" in message and len(self._hub):  # as an earlier version announces
                self._deliver_command(message["command"])
            elif "fleet" in message and self._fleet_notices is not None:
                self._fleet_notices.receive(message["fleet"])
        except RECONNECT_ON:
            raise
        except Exception:
            self._skip(f"the message {data[:200]!r}", _command_id_in(data))

    def catch_up(self) -> None:
        """Queue what may have been announced while this subscriber was away. A command
        whose handling fails is skipped; the others are still caught up. The operator
        event stream re-reads the fleet counts (the agent and command events are lost)."""
        if self._fleet_notices is not None:
            self._fleet_notices.resync()
        if not len(self._hub):
            return
        for command_id in self._commands.unexpired_ids(self._clock(), _CATCH_UP_LIMIT):
            try:
                self._deliver_command(command_id)
            except RECONNECT_ON:
                raise
            except Exception:
                self._skip("a command while catching up", command_id)

    def _deliver_command(self, command_id: str) -> None:
        snapshot = self._commands.get(command_id)
        if snapshot is not None:
            self._deliver_pending(snapshot)

    def _deliver_batch(self, command_id: str, agent_ids: Sequence[str], sent_at: float) -> None:
        """Another process sent the command to these targets at ``sent_at``: write it to
        those streaming here (opened before then) whose delivery is still PENDING, which
        a cancel, an expiry or another stream may have changed since."""
        local = self._hub.connected(agent_ids)
        if not local:
            return
        found = self._commands.pending_to(command_id, sorted(local))
        if found is None:
            return
        command, pending = found
        if pending:
            frame = command_frame(command.as_sent(sent_at), self._signer)
            self._hub.deliver(pending, command_id, frame, opened_by=sent_at)

    def _deliver_cancel(self, command_id: str, agent_ids: Sequence[str]) -> None:
        """Another process cancelled these deliveries: tell the targets streaming here."""
        self._hub.deliver(agent_ids, cancel_key(command_id), cancel_frame(command_id))

    def _skip(self, what: str, command_id: str | None) -> None:
        """Count a failed message; log it (with its traceback) the first time only, since a
        stored command that fails is read again at every catch-up until it expires."""
        self.skipped += 1
        if self._monitor is not None:
            self._monitor.skipped()
        extra = {"command_id": command_id} if command_id is not None else {}
        if command_id is not None and command_id in self._skipped_ids:
            log.debug("bus: skipped command %s again", command_id, extra=extra)
            return
        if command_id is not None:
            self._skipped_ids[command_id] = None
            if len(self._skipped_ids) > _REMEMBERED_SKIPS:
                self._skipped_ids.popitem(last=False)
        log.exception(
            "bus: skipped %s%s: handling it failed; the subscriber goes on",
            what,
            f" (command {command_id})" if command_id is not None else "",
            extra=extra,
        )

    def _deliver_pending(self, snapshot: CommandSnapshot) -> None:
        """Queue the command for its PENDING targets streaming here: one frame per time they
        were sent (one for a command without a rollout; a rollout's unsent are skipped)."""
        command = snapshot.command
        by_sent_at: dict[float, list[str]] = {}
        for delivery in snapshot.deliveries:
            sent_at = command.sent_at(delivery)
            if delivery.status is DeliveryStatus.PENDING and sent_at is not None:
                by_sent_at.setdefault(sent_at, []).append(delivery.agent_id)
        for sent_at, pending in by_sent_at.items():
            local = self._hub.connected(pending)
            if local:
                self._hub.deliver(
                    sorted(local),
                    command.id,
                    command_frame(command.as_sent(sent_at), self._signer),
                    opened_by=sent_at,
                )


def _await_confirmation(pubsub: PubSub, within: float = _CONFIRM_SECONDS) -> None:
    """Wait for Redis to confirm the subscription: from then on nothing published is missed
    (and the catch-up reads what was published before)."""
    deadline = time.monotonic() + within
    while (remaining := deadline - time.monotonic()) > 0:
        message = pubsub.get_message(timeout=remaining)
        if message is not None and message["type"] == "subscribe":
            return
    raise redis.exceptions.TimeoutError(f"Redis did not confirm the subscription within {within} s")


def _command_id_in(data: str) -> str | None:
    """The command id a bus message names, if it can be read at all (for the log)."""
    try:
        message = json.loads(data)
        command_id = message.get("command") or message.get("cancel")
    except Exception:  # not JSON, not an object, nested too deep: no id to name
        return None
    return command_id if isinstance(command_id, str) else None


def _ids(message: dict[str, Any]) -> dict[str, str]:
    """The log fields of a bus message: the command or the agent it is about."""
    if "command" in message or "cancel" in message:
        return {"command_id": message.get("command") or message["cancel"]}
    agent_id = message.get("end") or message.get("disconnect")
    return {"agent_id": agent_id} if agent_id is not None else {}

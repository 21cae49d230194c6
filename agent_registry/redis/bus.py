"""The bus across processes: Redis pub/sub says "look now"; the store says what.

One subscriber greenlet per worker fans out to the local hub (never a Redis connection
per stream). A message lost while the subscriber reconnects loses nothing: after every
(re)connect the subscriber re-reads the commands still inside their expiry window and
queues what is PENDING for streams it holds that were open when the command was made.
The same greenlet pair also renews this worker's presence claims.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import gevent
import redis
from redis.client import PubSub

from ..clock import Clock
from ..core.models import Command, CommandSnapshot, DeliveryStatus
from ..core.ports import RecentCommands, SharedPresence
from ..errors import StoreUnavailable
from ..streams.hub import StreamHub, cancel_key
from ..streams.sse import Signer, cancel_frame, command_frame
from .client import OUTAGE_ERRORS, ReportsOutages

log = logging.getLogger(__name__)

CHANNEL = "ar:bus"
# What makes the subscriber reconnect: Redis gone under the pub/sub connection, or under a
# store read it makes (the store reports those as StoreUnavailable).
RECONNECT_ON: tuple[type[Exception], ...] = (*OUTAGE_ERRORS, StoreUnavailable)
_CATCH_UP_LIMIT = 10_000


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
        self._greenlets: list[gevent.Greenlet[[], None]] = []

    # -- publishing (any greenlet) --

    def publish(self, command: Command, agent_ids: Sequence[str]) -> None:
        self._hub.deliver_first(agent_ids, command.id, command_frame(command, self._signer))
        self._announce({"command": command.id})

    def end_stream(self, agent_id: str, token: str) -> None:
        """Ask whichever process holds the stream with ``token`` to end it (replaced)."""
        self._hub.end(agent_id, token)
        self._announce({"end": agent_id, "token": token})

    def disconnect(self, agent_id: str) -> None:
        """End the agent's stream, whichever process holds it (the agent was deleted)."""
        self._hub.end(agent_id)
        self._announce({"end": agent_id})

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
            self._greenlets = [
                gevent.spawn(self._subscribe_forever),
                gevent.spawn(self._refresh_forever),
            ]

    def stop(self) -> None:
        gevent.killall(self._greenlets, timeout=2)
        self._greenlets = []

    def _subscribe_forever(self) -> None:
        backoff = 0.1
        while True:
            # redis-py leaves Redis.pubsub unannotated; what it returns is a typed PubSub.
            pubsub: PubSub = self._redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(CHANNEL)
                self._store_answered()
                log.info("bus: subscribed to %s", CHANNEL)
                self.catch_up()
                backoff = 0.1
                while True:
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self.handle(message["data"])
            except RECONNECT_ON as exc:
                if not isinstance(exc, StoreUnavailable):  # a store read counted it already
                    self._store_failed("bus: subscriber", exc)
                log.debug("bus: subscriber lost Redis (%s); reconnecting in %.1fs", exc, backoff)
            finally:
                pubsub.close()
            gevent.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

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
        message = json.loads(data)
        if message.get("origin") == self.origin:
            return
        if "end" in message:
            self._hub.end(message["end"], message.get("token"))
        elif "cancel" in message and len(self._hub):
            command_id = message["cancel"]
            self._hub.deliver(message["agents"], cancel_key(command_id), cancel_frame(command_id))
        elif "supersede" in message:
            self._hub.supersede(message["supersede"], int(message["generation"]))
        elif "command" in message and len(self._hub):
            snapshot = self._commands.get(message["command"])
            if snapshot is not None:
                self._deliver_pending(snapshot)

    def catch_up(self) -> None:
        """Queue what may have been announced while this subscriber was away."""
        if not len(self._hub):
            return
        for command in self._commands.unexpired(self._clock(), _CATCH_UP_LIMIT):
            snapshot = self._commands.get(command.id)
            if snapshot is not None:
                self._deliver_pending(snapshot)

    def _deliver_pending(self, snapshot: CommandSnapshot) -> None:
        command = snapshot.command
        pending = [
            delivery.agent_id
            for delivery in snapshot.deliveries
            if delivery.status is DeliveryStatus.PENDING
        ]
        local = self._hub.connected(pending)
        if local:
            self._hub.deliver(
                sorted(local),
                command.id,
                command_frame(command, self._signer),
                opened_by=command.created_at,
            )


def _ids(message: dict[str, Any]) -> dict[str, str]:
    """The log fields of a bus message: the command or the agent it is about."""
    if "command" in message or "cancel" in message:
        return {"command_id": message.get("command") or message["cancel"]}
    return {"agent_id": message["end"]} if "end" in message else {}

"""The open event streams of this process, one bounded gevent queue each."""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Callable, Iterable

import gevent

from ..core.ports import StreamGauge, StreamListener
from .queued import END, QueuedStream
from .stream_queue import Full

log = logging.getLogger(__name__)

__all__ = ["END", "StreamHub", "Subscription", "cancel_key", "is_command_key"]

# What a queued item is keyed by, when it is not a command: the cancel event of a command
# is ``cancel:{commandId}``. Its own key, so that it is not taken for a repeat of the
# command; the writer records DELIVERED for command keys only.
CANCEL_PREFIX = "cancel:"


def cancel_key(command_id: str) -> str:
    return CANCEL_PREFIX + command_id


def is_command_key(key: str) -> bool:
    return not key.startswith(CANCEL_PREFIX)


# Command ids remembered per stream, so a command announced twice (a bus catch-up after a
# reconnect re-announces what is still PENDING, which includes what was queued but not yet
# recorded as DELIVERED) is still written once. A few suffice; each stream keeps this many.
_RECENT_IDS = 16


class Subscription(QueuedStream):
    """One open agent stream: the agent it belongs to, its queue and the client socket."""

    __slots__ = ("agent_id", "generation", "opened_at", "recent", "token")

    def __init__(
        self,
        agent_id: str,
        queue_size: int,
        sock: socket.socket | None,
        opened_at: float,
        generation: int | None = None,
    ) -> None:
        super().__init__(queue_size, sock)
        self.agent_id = agent_id
        # The generation of the agent token that opened it (auth on): a registration that
        # raises the agent's generation ends it (``StreamHub.supersede``).
        self.generation = generation
        self.token = uuid.uuid4().hex
        self.opened_at = opened_at
        self.recent: dict[str, None] | None = None

    def offer(self, item: tuple[str, bytes]) -> bool:
        """Queue an event once; a full queue means the client stopped reading: end it."""
        if self.closed:
            return False
        command_id = item[0]
        if self.recent is None:
            self.recent = {}
        elif command_id in self.recent:
            return True
        try:
            self.queue.put_nowait(item)
            self.recent[command_id] = None
            if len(self.recent) > _RECENT_IDS:
                del self.recent[next(iter(self.recent))]
            return True
        except Full:
            log.warning(
                "agent %s: stream queue full (%d events), ending the stream; "
                "undelivered commands stay PENDING",
                self.agent_id,
                self.queue.maxsize,
                extra={"agent_id": self.agent_id, "command_id": command_id},
            )
            self.end()
            return False


class StreamHub:
    def __init__(
        self,
        queue_size: int,
        listener: StreamListener | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._queue_size = queue_size
        self.listener = listener
        self._clock = clock
        self._subscriptions: dict[str, Subscription] = {}
        self._closing = False
        # Open streams of this process, as the writer opens and closes them (metrics).
        self.gauge: StreamGauge | None = None

    def __len__(self) -> int:
        return len(self._subscriptions)

    def open(
        self, agent_id: str, sock: socket.socket | None = None, generation: int | None = None
    ) -> Subscription:
        """Register a stream for the agent, ending the one it replaces."""
        previous = self._subscriptions.get(agent_id)
        if previous is not None:
            log.info(
                "agent %s: new stream replaces the open one", agent_id, extra={"agent_id": agent_id}
            )
            previous.end()
        subscription = Subscription(agent_id, self._queue_size, sock, self._clock(), generation)
        if self.gauge is not None:
            self.gauge.inc()
        if self._closing:
            # The worker is stopping but still accepting for a moment: answer, then end at
            # once, so the agent reconnects to a process that stays.
            subscription.end()
            return subscription
        self._subscriptions[agent_id] = subscription
        if self.listener is not None:
            self.listener.opened(subscription)
        log.info(
            "agent %s: stream opened (%d open)",
            agent_id,
            len(self._subscriptions),
            extra={"agent_id": agent_id},
        )
        return subscription

    def close(self, subscription: Subscription) -> None:
        """Forget a stream that ended; a newer stream of the same agent is left alone.

        Called once per ``open`` (the writer's ``finally``), so ``gauge`` stays balanced
        even for a stream that was replaced or opened while closing.
        """
        subscription.closed = True
        if self.gauge is not None:
            self.gauge.dec()
        if self._subscriptions.get(subscription.agent_id) is subscription:
            del self._subscriptions[subscription.agent_id]
            if self.listener is not None:
                self.listener.closed(subscription)
        log.info(
            "agent %s: stream closed (%d open)",
            subscription.agent_id,
            len(self._subscriptions),
            extra={"agent_id": subscription.agent_id},
        )

    def end(self, agent_id: str, token: str | None = None) -> None:
        """End the agent's stream here (only the one with ``token``, when given)."""
        subscription = self._subscriptions.get(agent_id)
        if subscription is not None and token in (None, subscription.token):
            subscription.end()

    def supersede(self, agent_id: str, generation: int) -> None:
        """End the agent's stream here if a token older than ``generation`` opened it: a
        stream must not go on receiving commands for a token that no longer works."""
        subscription = self._subscriptions.get(agent_id)
        if (
            subscription is not None
            and subscription.generation is not None
            and subscription.generation < generation
        ):
            log.info(
                "agent %s: ending the stream of a superseded token",
                agent_id,
                extra={"agent_id": agent_id},
            )
            subscription.end()

    def end_all(self) -> None:
        """End every stream, and every stream opened from now on (worker shutdown)."""
        self._closing = True
        for subscription in list(self._subscriptions.values()):
            subscription.end()

    def deliver(
        self,
        agent_ids: Iterable[str],
        command_id: str,
        frame: bytes,
        opened_by: float | None = None,
    ) -> int:
        """Queue the same frame for each target streaming here; returns how many.

        With ``opened_by``, streams opened after that moment are skipped: opening a
        stream never pushes commands created before it.
        """
        item = (command_id, frame)
        subscriptions = self._subscriptions
        queued = 0
        for agent_id in agent_ids:
            subscription = subscriptions.get(agent_id)
            if subscription is None:
                continue
            if opened_by is not None and subscription.opened_at > opened_by:
                continue
            if subscription.offer(item):
                queued += 1
        return queued

    def deliver_first(self, agent_ids: Iterable[str], command_id: str, frame: bytes) -> int:
        """``deliver``, then let the woken streams write before the caller goes on.

        The request that created the command still has to build its answer (for a
        fleet-wide command, a body listing every target); without this yield every
        delivery would wait for that.
        """
        queued = self.deliver(agent_ids, command_id, frame)
        gevent.sleep(0)
        return queued

    def subscriptions(self) -> list[Subscription]:
        return list(self._subscriptions.values())

    def is_connected(self, agent_id: str) -> bool:
        return agent_id in self._subscriptions

    def connected(self, agent_ids: Iterable[str]) -> set[str]:
        return {agent_id for agent_id in agent_ids if agent_id in self._subscriptions}

    def connected_count(self) -> int:
        return len(self._subscriptions)

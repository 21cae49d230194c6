"""What the operator event stream sends (API.md § Operator event stream), and when.

``OperatorEvents`` is told what happened by the core (a ``FleetObserver``: registrations,
transitions, revivals, commands sent, delivered and finished, deletions) and by the stream
hub (a ``StreamListener``: an agent's stream opened or closed). It keeps only *which*
agents and commands changed; one flusher greenlet per process, spawned when something
changed, reads their current state from the store and sends it to this process's operator
streams. So a burst costs one read per agent and per command, not one per change, and
what is sent is always the latest state:

- ``agent``: each changed agent, as soon as the flusher runs (ids read 500 at a time);
- ``fleet``: the counts, at most once per ``interval`` (0.25 s: 4 a second), and only to
  the streams whose last counts differ;
- ``command``: each changed command without its deliveries, at most once per ``interval``
  per command, and only when it differs from what was last sent.

With several processes (Redis), the flusher also announces what changed here on the bus
(command ids paced like the events), and every other process's flusher reads the state
for its own streams: one bus subscription per process, whatever the number of streams.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import gevent
from gevent.event import Event

from ..clock import Clock, iso
from ..core.models import Agent, Command, Delivery, Transition
from ..core.ports import AgentStore, CommandStore, FleetRelay, OpenStream, Presence
from ..errors import StoreUnavailable
from ..streams.operator_hub import OperatorHub, OperatorStream
from ..streams.pacer import Pacer
from ..streams.sse import event, json_line
from ..web.representation import agent_json, command_event_json, fleet_json

log = logging.getLogger(__name__)

# At most 4 fleet events a second, and 4 per command (API.md).
INTERVAL = 0.25
# Agents read from the store per call; the flusher lets the streams write in between.
AGENT_BATCH = 500
# The pacer's key for the fleet counts (a command id is a UUID, never this).
_FLEET = ":fleet"
# Commands whose last sent JSON is remembered, so that an unchanged one is not sent again.
_REMEMBERED_COMMANDS = 1_000


def fleet_frame(fleet: dict[str, int], at: float) -> bytes:
    return event(json_line({**fleet, "at": iso(at)}), event_type="fleet")


def agent_frame(data: dict[str, Any]) -> bytes:
    return event(json_line(data), event_type="agent")


class OperatorEvents:
    def __init__(
        self,
        hub: OperatorHub,
        agents: AgentStore,
        commands: CommandStore,
        presence: Presence,
        clock: Clock,
        interval: float = INTERVAL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._hub = hub
        hub.on_idle = self._idle
        self._agents = agents
        self._commands = commands
        self._presence = presence
        self._clock = clock
        self._monotonic = monotonic
        self.relay: FleetRelay | None = None
        self._publishing = False
        # To send to this process's streams.
        self._changed_agents: set[str] = set()
        self._deleted: list[dict[str, Any]] = []
        self._paced: Pacer[str] = Pacer(interval)  # command ids, and _FLEET
        self._sent: OrderedDict[str, str] = OrderedDict()  # command id -> JSON last sent
        # To announce to the other processes.
        self._out_agents: set[str] = set()
        self._out_deleted: list[dict[str, Any]] = []
        self._out_commands: Pacer[str] = Pacer(interval)
        self._wake = Event()
        self._flusher: gevent.Greenlet[[], None] | None = None

    # -- the first event of a stream --

    def fleet_now(self) -> tuple[bytes, dict[str, int]]:
        """The ``fleet`` event of this moment, and its counts (raises ``StoreUnavailable``)."""
        fleet = fleet_json(self._agents.counts(), self._presence.connected_count())
        return fleet_frame(fleet, self._clock()), fleet

    def stream_opened(self, stream: OperatorStream) -> None:
        """An operator stream opened: read the counts again soon, in case they changed since
        its first event was read."""
        self._take_in(fleet=True)

    # -- FleetObserver (the core) and StreamListener (the agent stream hub) --

    def registered(self, agent: Agent, created: bool) -> None:
        self._agent_changed(agent.id)

    def transitioned(self, transition: Transition) -> None:
        self._agent_changed(transition.agent_id)

    def revived(self, agent_id: str, at: float) -> None:
        self._agent_changed(agent_id)

    def command_sent(self, command: Command, agent_ids: Sequence[str]) -> None:
        self._command_changed(command.id)

    def delivered(self, command_id: str, created_at: float, count: int, at: float) -> None:
        self._command_changed(command_id)

    def finished(self, command: Command, delivery: Delivery) -> None:
        self._command_changed(command.id)

    def deleted(self, agent: Agent) -> None:
        gone = {**agent_json(agent, False), "deleted": True}
        if self._publishing:
            self._out_deleted.append(gone)
        self._take_in(deleted=[gone], fleet=True)

    def opened(self, stream: OpenStream) -> None:
        self._agent_changed(stream.agent_id)

    def closed(self, stream: OpenStream) -> None:
        self._agent_changed(stream.agent_id)

    def _agent_changed(self, agent_id: str) -> None:
        announced = self._publishing and _added(self._out_agents, agent_id)
        self._take_in(agent_ids=[agent_id], fleet=True, news=announced)

    def _command_changed(self, command_id: str) -> None:
        announced = self._publishing and self._out_commands.mark(command_id)
        self._take_in(command_ids=[command_id], news=announced)

    # -- FleetNotices (the bus: what other processes announced) --

    def receive(self, notice: dict[str, Any]) -> None:
        agents, deleted = notice.get("agents", ()), notice.get("deleted", ())
        self._take_in(agents, deleted, notice.get("commands", ()), fleet=bool(agents or deleted))

    def resync(self) -> None:
        """Notices may have been lost (the bus reconnected): send the counts if they moved."""
        self._take_in(fleet=True)

    # -- background --

    def start(self) -> None:
        """Announce to the other processes from now on (a server worker, with Redis)."""
        if self.relay is not None:
            self.relay.relay_fleet_to(self)
            self._publishing = True

    def stop(self) -> None:
        self._publishing = False
        if self._flusher is not None:
            self._flusher.kill()

    def idle(self) -> bool:
        """No flusher is running (nothing left to send or announce)."""
        return self._flusher is None

    # -- the flusher --

    def _take_in(
        self,
        agent_ids: Iterable[str] = (),
        deleted: Iterable[dict[str, Any]] = (),
        command_ids: Iterable[str] = (),
        fleet: bool = False,
        news: bool = False,
    ) -> None:
        """Note what to send to this process's streams (nothing when there are none), and
        make sure the flusher runs.

        The flusher is woken only by ``news``: something it has not noted yet. What was
        already noted is in the wait it computed (or it is about to take it), so the acks
        of a fan-out, which mark one command thousands of times a second, wake it at most
        once per turn of that command instead of once each.
        """
        deleted = list(deleted)
        news = news or bool(deleted)
        if len(self._hub):
            for agent_id in agent_ids:
                news |= _added(self._changed_agents, agent_id)
            self._deleted.extend(deleted)
            for command_id in command_ids:
                news |= self._paced.mark(command_id)
            if fleet:
                news |= self._paced.mark(_FLEET)
        elif not self._publishing:
            return
        if self._flusher is None:
            self._flusher = gevent.spawn(self._run)
        elif news:
            self._wake.set()

    def _idle(self) -> None:
        """The last operator stream here closed: forget what was left to send it."""
        self._changed_agents.clear()
        self._deleted.clear()
        self._paced.clear()
        self._sent.clear()
        self._wake.set()

    def _run(self) -> None:
        try:
            while True:
                self._wake.clear()
                wait = self._flush()
                if wait is None:
                    return
                self._wake.wait(wait)
        except Exception:
            log.exception("operator events: the flusher failed; what it was sending is lost")
        finally:
            self._flusher = None

    def _flush(self) -> float | None:
        """Announce and send what is due; seconds until more is due (None: nothing left)."""
        if self._publishing:
            self._announce()
        if len(self._hub):
            self._send_agents()
            for key in self._paced.take(self._monotonic()):
                if key == _FLEET:
                    self._send_fleet()
                else:
                    self._send_command(key)
        if self._changed_agents or self._deleted or self._out_agents or self._out_deleted:
            return 0.0
        now = self._monotonic()
        waits = [w for w in (self._paced.wait(now), self._out_commands.wait(now)) if w is not None]
        return min(waits) if waits else None

    def _announce(self) -> None:
        notice: dict[str, Any] = {}
        if self._out_agents:
            notice["agents"] = sorted(self._out_agents)
            self._out_agents.clear()
        if self._out_deleted:
            notice["deleted"], self._out_deleted = self._out_deleted, []
        commands = self._out_commands.take(self._monotonic())
        if commands:
            notice["commands"] = sorted(commands)
        if notice and self.relay is not None:
            self.relay.announce_fleet(notice)

    def _send_agents(self) -> None:
        changed = sorted(self._changed_agents)
        self._changed_agents.clear()
        for start in range(0, len(changed), AGENT_BATCH):
            if start:
                gevent.sleep(0)  # let the streams write the previous batch
            batch = changed[start : start + AGENT_BATCH]
            try:
                found = self._agents.get_many(batch)
                connected = self._presence.connected(batch)
            except StoreUnavailable:
                log.debug("operator events: store unavailable, %d agent event(s) lost", len(batch))
                continue
            for agent in found:
                if agent is not None:  # None: deleted since (its own event says so)
                    frame = agent_frame(agent_json(agent, agent.id in connected))
                    self._hub.broadcast(frame, agent.group)
        deleted, self._deleted = self._deleted, []
        for gone in deleted:
            self._hub.broadcast(agent_frame(gone), gone["group"])

    def _send_fleet(self) -> None:
        try:
            frame, fleet = self.fleet_now()
        except StoreUnavailable:
            self._paced.mark(_FLEET)  # try again at the next turn
            return
        for stream in self._hub.streams():
            if stream.fleet != fleet:
                stream.fleet = fleet
                stream.offer(frame)

    def _send_command(self, command_id: str) -> None:
        try:
            snapshot = self._commands.get(command_id)
        except StoreUnavailable:
            self._paced.mark(command_id)  # try again at the next turn
            return
        if snapshot is None:  # purged
            self._sent.pop(command_id, None)
            return
        data = json_line(command_event_json(snapshot))
        if self._sent.get(command_id) == data:
            return
        self._sent[command_id] = data
        self._sent.move_to_end(command_id)
        if len(self._sent) > _REMEMBERED_COMMANDS:
            self._sent.popitem(last=False)
        self._hub.broadcast(event(data, event_type="command"))


def _added(keys: set[str], key: str) -> bool:
    """Add ``key``; whether it was not there yet."""
    if key in keys:
        return False
    keys.add(key)
    return True

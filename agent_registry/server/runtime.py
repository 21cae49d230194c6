"""Everything one app instance owns, wired together from its settings.

Lives on ``app.extensions["agent_registry"]``; never in module globals, so two apps in one
process (tests) never share state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import gevent
from gevent import monkey

from ..clock import Clock, system_clock
from ..config import Settings
from ..core.commands import Commands, CommandTiming
from ..core.fleet import FleetOperations
from ..core.ports import (
    AgentStore,
    Bus,
    CommandStore,
    FleetObserver,
    FleetRelay,
    Observers,
    Presence,
    StreamListener,
    StreamListeners,
)
from ..core.registry import Lifecycle, Registry
from ..outage import StoreOutage
from ..security.setup import load_security
from ..streams.delivery_recorder import DeliveryRecorder
from ..streams.hub import StreamHub
from ..streams.on_connect import DeliverOnConnect
from ..streams.operator_hub import OperatorHub
from ..streams.sse import Signer
from .operator_events import OperatorEvents
from .scheduler import Sweeper

if TYPE_CHECKING:
    from ..redis.bus import BusMonitor
    from .metrics import Metrics

log = logging.getLogger(__name__)


class Background(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


class StoreProbe(Protocol):
    def answers(self) -> bool:
        """Whether the store answers right now; bounded in time, never raises."""


class Relay(Protocol):
    def relays(self) -> bool:
        """Whether commands published by other processes reach this one's streams now."""

    def watch(self, monitor: BusMonitor) -> None:
        """Tell ``monitor`` (the metrics) whether it relays, now and at each change."""


class InProcess:
    """The memory store's probe and relay: the store and the bus are this process, so they
    answer and relay while we do."""

    def answers(self) -> bool:
        return True

    def relays(self) -> bool:
        return True

    def watch(self, monitor: BusMonitor) -> None:
        monitor.subscribed(True)


@dataclass
class Backend:
    """The store-specific parts: where state lives and how commands cross processes."""

    agents: AgentStore
    commands: CommandStore
    bus: Bus
    presence: Presence
    probe: StoreProbe
    relay: Relay
    background: list[Background] = field(default_factory=list)
    # Told when agent streams open and close (shared presence), before the operator events.
    listener: StreamListener | None = None
    # Carries the operator event stream's notices to the other processes.
    fleet_relay: FleetRelay | None = None


def memory_backend(hub: StreamHub, signer: Signer | None = None) -> Backend:
    from ..stores.memory import MemoryAgentStore, MemoryCommandStore
    from ..streams.local_bus import LocalBus

    bus = LocalBus(hub, signer)
    in_process = InProcess()
    return Backend(MemoryAgentStore(), MemoryCommandStore(), bus, hub, in_process, in_process)


def redis_backend(
    settings: Settings,
    hub: StreamHub,
    clock: Clock,
    outage: StoreOutage | None = None,
    signer: Signer | None = None,
) -> Backend:
    from ..redis.agents import RedisAgentStore
    from ..redis.bus import RedisBus
    from ..redis.client import connect
    from ..redis.commands import RedisCommandStore
    from ..redis.health import RedisProbe
    from ..redis.presence import RedisPresence

    client = connect(settings.store)
    # Heartbeats and acks are group-committed where requests are greenlets (a gevent
    # worker); with threads (a test's Flask client) each is its own call.
    group_commit = monkey.is_module_patched("threading")
    commands = RedisCommandStore(client, group_commit=group_commit)
    bus = RedisBus(
        client, hub, commands, clock, refresh_every=settings.keepalive_seconds, signer=signer
    )
    # Three keepalive intervals: a crashed worker's agents read disconnected after that.
    presence = RedisPresence(client, 3 * settings.keepalive_seconds, bus.end_stream)
    bus.presence = presence
    agents = RedisAgentStore(client, group_commit=group_commit)
    # Everything that talks to Redis reports to one tracker, which logs an outage once.
    agents.outage = commands.outage = bus.outage = presence.outage = outage
    probe = RedisProbe(settings.store)
    return Backend(agents, commands, bus, presence, probe, bus, [bus], presence, bus)


def _yield() -> None:
    gevent.sleep(0)


class Runtime:
    def __init__(self, settings: Settings, clock: Clock = system_clock) -> None:
        self.settings = settings
        self.clock = clock
        self.hub = StreamHub(settings.stream_queue_size, clock=clock)
        # Whether the shared store is down, and how many operations failed (store errors).
        self.outage = StoreOutage(clock)
        self.security = load_security(settings, clock)
        signer = self.security.signer
        if signer is not None and signer.ephemeral:
            log.warning(
                "signing commands with an ephemeral key %s (no AGENT_REGISTRY_SIGNING_KEY_FILE): "
                "agents learn a new key after every restart",
                signer.key_id,
            )
        if settings.uses_memory_store:
            backend = memory_backend(self.hub, signer)
        else:
            backend = redis_backend(settings, self.hub, clock, self.outage, signer)
        self.presence = backend.presence
        self.bus = backend.bus
        self._probe = backend.probe
        self.relay = backend.relay
        # Set first thing on shutdown: /readyz answers 503 from then on.
        self.draining = False
        # With metrics off nothing is observed or timed, and prometheus_client is not loaded.
        self.metrics: Metrics | None = None
        if settings.metrics:
            from .metrics import Metrics, multiprocess_dir

            self.metrics = Metrics(multiprocess_dir())
            self.hub.gauge = self.metrics.streams_open
        # The operator event stream (GET /api/v1/events): its streams, and what feeds them.
        self.operator_hub = OperatorHub(settings.operator_stream_queue_size)
        self.operator_events = OperatorEvents(
            self.operator_hub, backend.agents, backend.commands, self.presence, clock
        )
        self.operator_events.relay = backend.fleet_relay
        if self.metrics is not None:
            self.operator_hub.gauge = self.metrics.operator_streams_open
        listeners = [backend.listener] if backend.listener is not None else []
        self.hub.listener = StreamListeners(*listeners, self.operator_events)
        observer: FleetObserver = self.operator_events
        if self.metrics is not None:
            observer = Observers(self.metrics.observer, self.operator_events)
        self.registry = Registry(
            backend.agents,
            clock,
            Lifecycle(
                settings.stale_after_seconds,
                settings.dead_after_seconds,
                outage_after=2 * settings.sweep_interval_seconds,
            ),
            observer,
            self.outage,
        )
        self.commands = Commands(
            backend.agents,
            backend.commands,
            backend.bus,
            clock,
            CommandTiming(settings.command_expiry_seconds, settings.command_retention_seconds),
            observer,
        )
        # Between batches of a prune, let the worker's other requests and streams run.
        self.fleet = FleetOperations(
            backend.agents, self.commands, backend.bus, clock, observer, pause=_yield
        )
        self.sweeper = Sweeper(
            self.registry,
            self.commands,
            settings.sweep_interval_seconds,
            self.metrics.observe_sweep if self.metrics is not None else None,
        )
        if self.metrics is not None:
            self.metrics.fleet.counts = self.registry.counts
            self.metrics.fleet.connected = self.presence.connected_count
            self.outage.on_failure = self.metrics.store_errors.inc
            self.outage.on_sweep_gap = self.metrics.observe_outage
            backend.relay.watch(self.metrics.bus)
        self.delivery_recorder = DeliveryRecorder(self.commands)
        self.deliver_on_connect = DeliverOnConnect(self.commands, signer)
        # Stopped in reverse: the metrics last, after the DELIVERED records they count.
        self._background: list[Background] = [
            *([self.metrics] if self.metrics is not None else []),
            self.sweeper,
            *backend.background,
            self.delivery_recorder,
            self.operator_events,
        ]
        self._stopped = False

    def start(self) -> None:
        """Start background work (sweeps, bus); called once per server worker."""
        for part in self._background:
            part.start()

    def readiness(self) -> dict[str, str]:
        """Each readiness check and its outcome: ``ok``, or what is wrong."""
        return {
            "store": "ok" if self._probe.answers() else "unavailable",
            "bus": "ok" if self.relay.relays() else "unsubscribed",
            "shutdown": "draining" if self.draining else "ok",
        }

    def stop(self) -> None:
        """Turn unready, then end every open stream and stop background work (worker
        shutdown); idempotent.

        Unready first, so that a load balancer probing /readyz stops sending this worker
        the streams its agents reopen, while the worker still answers.
        """
        if self._stopped:
            return
        self._stopped = True
        self.draining = True
        log.info(
            "shutting down: unready; ending %d open stream(s) and %d operator stream(s)",
            len(self.hub),
            len(self.operator_hub),
        )
        self.hub.end_all()
        self.operator_hub.end_all()
        for part in reversed(self._background):
            part.stop()

    def exited(self) -> None:
        """The worker's last moment (gunicorn's ``worker_exit``): stop, if not yet, and write
        out what the metrics counted since, such as requests answered while draining."""
        self.stop()
        if self.metrics is not None:
            self.metrics.tallies.flush()

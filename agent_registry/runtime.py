"""Everything one app instance owns, wired together from its settings.

Lives on ``app.extensions["agent_registry"]``; never in module globals, so two apps in one
process (tests) never share state.
"""

from __future__ import annotations

import logging

from .clock import Clock, system_clock
from .config import Settings
from .core.commands import Commands, CommandTiming
from .core.ports import Presence
from .core.registry import Lifecycle, Registry
from .scheduler import Sweeper
from .stores.memory import MemoryAgentStore, MemoryCommandStore
from .streams.hub import StreamHub
from .streams.local_bus import LocalBus

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, settings: Settings, clock: Clock = system_clock) -> None:
        self.settings = settings
        self.clock = clock
        if not settings.uses_memory_store:
            raise NotImplementedError("only the memory store is available in this build")
        agents = MemoryAgentStore()
        self.hub = StreamHub(settings.stream_queue_size)
        self.presence: Presence = self.hub
        self.registry = Registry(
            agents,
            clock,
            Lifecycle(settings.stale_after_seconds, settings.dead_after_seconds),
        )
        self.commands = Commands(
            agents,
            MemoryCommandStore(),
            LocalBus(self.hub),
            clock,
            CommandTiming(settings.command_expiry_seconds, settings.command_retention_seconds),
        )
        self.sweeper = Sweeper(self.registry, self.commands, settings.sweep_interval_seconds)

    def start(self) -> None:
        """Start background work (sweeps); called once per server worker."""
        self.sweeper.start()

    def stop(self) -> None:
        """End every open stream and stop background work (worker shutdown)."""
        log.info("shutting down: ending %d open stream(s)", len(self.hub))
        self.hub.end_all()
        self.sweeper.stop()

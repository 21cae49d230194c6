"""Fleet clean-up: delete one agent, or prune the agents DEAD for long enough.

Deleting an agent removes it from every list and count, cancels its deliveries that are
not final, and ends its event stream wherever it is open. Its tokens stop working because
they name an agent the store no longer knows (and the store never hands its generation
out again). Each removal is one compare-and-set in the store, so with several processes
pruning at once every agent is deleted, logged and counted by one of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..clock import Clock
from ..errors import AgentNotFound
from .commands import Commands
from .models import Agent
from .ports import AgentStore, Bus, FleetObserver, NoObserver

log = logging.getLogger(__name__)

# Agents removed per store read while pruning; the caller's ``pause`` runs between
# batches, so a prune of a large fleet does not hold up other requests.
PRUNE_BATCH = 500


class FleetOperations:
    def __init__(
        self,
        agents: AgentStore,
        commands: Commands,
        bus: Bus,
        clock: Clock,
        observer: FleetObserver | None = None,
        pause: Callable[[], None] = lambda: None,
    ) -> None:
        self._agents = agents
        self._commands = commands
        self._bus = bus
        self._clock = clock
        self._observer: FleetObserver = observer or NoObserver()
        self._pause = pause

    def delete(self, agent_id: str, deleted_by: str | None = None) -> Agent:
        """Delete one agent; ``AgentNotFound`` when there is none (or it was just deleted)."""
        agent = self._agents.delete(agent_id)
        if agent is None:
            raise AgentNotFound(f"Agent '{agent_id}' is not registered.")
        self._removed(agent, deleted_by, "deleted")
        return agent

    def prune(
        self, dead_for: float, deleted_by: str | None = None, batch: int = PRUNE_BATCH
    ) -> int:
        """Delete every agent DEAD for at least ``dead_for`` seconds; how many were deleted.

        Reads the store's index of DEAD agents by the time they went DEAD, ``batch`` at a
        time: the work is proportional to what is deleted, not to the fleet.
        """
        cutoff = self._clock() - dead_for
        deleted = 0
        previous: list[str] = []
        while True:
            due = self._agents.dead(cutoff, batch)
            # Each listed id is deleted or dropped from the index by ``delete``; the same
            # batch twice would mean the store made no progress: stop rather than spin.
            if not due or due == previous:
                break
            previous = due
            for agent_id in due:
                agent = self._agents.delete(agent_id, dead_before=cutoff)
                if agent is not None:  # else revived meanwhile, or another process won
                    deleted += 1
                    self._removed(agent, deleted_by, "pruned")
            self._pause()
        log.info(
            "pruned %d agent(s) DEAD for at least %gs, by %s",
            deleted,
            dead_for,
            deleted_by or "anonymous (auth off)",
        )
        return deleted

    def _removed(self, agent: Agent, deleted_by: str | None, how: str) -> None:
        """What follows the removal of the agent's record: its stream, its deliveries."""
        self._bus.disconnect(agent.id)
        cancelled = self._commands.cancel_for_agent(agent.id)
        log.info(
            "agent %s %s (was %s, group %s) by %s; %d delivery(ies) cancelled",
            agent.id,
            how,
            agent.state,
            agent.group,
            deleted_by or "anonymous (auth off)",
            cancelled,
            extra={"agent_id": agent.id},
        )
        self._observer.deleted(agent)

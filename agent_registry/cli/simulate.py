"""A fleet of simulated agents, each a real ``AgentClient``: for demos, tests and load.

``agent-registry simulate`` runs it under gevent (one process, thousands of agents), by
re-executing itself through :data:`GEVENT_LAUNCHER`, which patches the standard library
before anything else is imported. Each agent holds two connections (its event stream,
and heartbeats/acks), so N agents need about 2N open files.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any

from ..client import AgentClient, Command, CommandFailed

log = logging.getLogger(__name__)

COMMAND_TYPES = ("config-update", "deep-trace", "replay")

# ``python -c GEVENT_LAUNCHER ARGS...`` runs ``agent-registry ARGS...`` fully gevent-patched.
GEVENT_LAUNCHER = (
    "from gevent import monkey; monkey.patch_all()\n"
    "from agent_registry.cli.main import main\n"
    "main(prog_name='agent-registry')\n"
)


def gevent_patched() -> bool:
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return False
    return monkey.is_module_patched("socket")


@dataclass(frozen=True)
class Behaviour:
    """How every simulated agent answers a command."""

    fail_rate: float = 0.0
    ack_delay: float = 0.0

    def __call__(self, command: Command) -> str:
        if self.ack_delay:
            time.sleep(self.ack_delay)
        if random.random() < self.fail_rate:
            raise CommandFailed(
                f"simulated failure (fail rate {self.fail_rate:g})", {"simulated": True}
            )
        return f"simulated {command.type} done"


class Fleet:
    """``count`` agents named ``{group}-00001``... in ``group``; ``start()``, ``stop()``."""

    def __init__(
        self,
        url: str,
        count: int,
        group: str = "simulated",
        behaviour: Behaviour | None = None,
        enrollment_token: str | None = None,
    ) -> None:
        handlers = dict.fromkeys(COMMAND_TYPES, behaviour or Behaviour())
        self.agents = []
        for number in range(1, count + 1):
            body = self.registration(group, number, count)
            self.agents.append(
                AgentClient(
                    url,
                    body["id"],
                    group,
                    version=body["version"],
                    capabilities=body["capabilities"],
                    handlers=handlers,
                    enrollment_token=enrollment_token,
                )
            )

    @staticmethod
    def registration(group: str, number: int, count: int) -> dict[str, Any]:
        """The registration body of simulated agent ``number`` of ``count``."""
        width = max(5, len(str(count)))
        return {
            "id": f"{group}-{number:0{width}d}",
            "group": group,
            "version": "simulated",
            "capabilities": {"simulated": True},
        }

    def start(self) -> None:
        for agent in self.agents:
            agent.start()

    def ready(self) -> int:
        """How many agents are registered with their event stream open."""
        return sum(agent.connected for agent in self.agents)

    def handled(self) -> tuple[int, int]:
        """Commands handled so far, and how many of them were acknowledged as FAILURE."""
        return (
            sum(agent.commands_handled for agent in self.agents),
            sum(agent.commands_failed for agent in self.agents),
        )

    def stop(self) -> None:
        for agent in self.agents:
            agent.stop()

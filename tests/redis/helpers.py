"""Records for the bus tests and the two-worker script."""

from __future__ import annotations

from agent_registry.core.models import Command, CommandType, Target, TargetKind
from harness.clock import T0


def command(command_id: str, created: float = T0, expires: float = T0 + 60) -> Command:
    return Command(
        command_id, CommandType.DEEP_TRACE, {"n": 1}, Target(TargetKind.ALL), created, expires
    )

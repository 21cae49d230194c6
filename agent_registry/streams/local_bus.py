"""The bus for one process: a new command goes straight to this process's hub."""

from __future__ import annotations

from collections.abc import Sequence

from ..core.models import Command
from .hub import StreamHub, cancel_key
from .sse import Signer, cancel_frame, command_frame


class LocalBus:
    def __init__(self, hub: StreamHub, signer: Signer | None = None) -> None:
        self._hub = hub
        self._signer = signer

    def publish(
        self, command: Command, agent_ids: Sequence[str], sent_at: float | None = None
    ) -> None:
        self._hub.deliver_first(agent_ids, command.id, command_frame(command, self._signer))

    def cancel(self, command_id: str, agent_ids: Sequence[str]) -> None:
        self._hub.deliver(agent_ids, cancel_key(command_id), cancel_frame(command_id))

    def disconnect(self, agent_id: str) -> None:
        self._hub.end(agent_id)

    def supersede(self, agent_id: str, generation: int) -> None:
        self._hub.supersede(agent_id, generation)

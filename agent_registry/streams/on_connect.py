"""Delivery on connect (API.md v1.1): a stream that opens gets the commands sent with
``deliverOnConnect`` whose delivery to it is still PENDING and unexpired.

Each is queued exactly as it would have been when sent (same id, same bytes: the frame is
encoded, and signed, the same way), once the stream is registered with the hub, so that
a command sent meanwhile is not missed; the stream's recent ids keep one that is also
announced by the bus from being written twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from ..core.models import Command
from ..errors import StoreUnavailable
from .hub import Subscription
from .sse import Signer, command_frame

log = logging.getLogger(__name__)


class PendingOnConnect(Protocol):
    def pending_on_connect(self, agent_id: str) -> Sequence[Command]: ...


class DeliverOnConnect:
    def __init__(self, commands: PendingOnConnect, signer: Signer | None = None) -> None:
        self._commands = commands
        self._signer = signer

    def __call__(self, subscription: Subscription) -> None:
        agent_id = subscription.agent_id
        try:
            owed = self._commands.pending_on_connect(agent_id)
        except StoreUnavailable:
            # The stream stays open; what it was owed stays PENDING until it expires.
            log.warning(
                "agent %s: store unavailable, commands owed on connect were not written",
                agent_id,
                extra={"agent_id": agent_id},
            )
            return
        for command in owed:
            subscription.offer((command.id, command_frame(command, self._signer)))
        if owed:
            log.info(
                "agent %s: %d command(s) delivered on connect",
                agent_id,
                len(owed),
                extra={"agent_id": agent_id},
            )

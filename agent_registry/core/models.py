"""Records the core works with. Plain data: no behaviour beyond small derived values.

Stores hand these out as read-only views; the core changes them only through store calls,
so that a shared store can make each change atomic.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from .rollout import RolloutPlan


class AgentState(StrEnum):
    LIVE = "LIVE"
    STALE = "STALE"
    DEAD = "DEAD"


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"
    # Stopped by an operator: the command was cancelled, or its target agent deleted.
    CANCELLED = "CANCELLED"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {
        DeliveryStatus.ACKNOWLEDGED,
        DeliveryStatus.FAILED,
        DeliveryStatus.EXPIRED,
        DeliveryStatus.CANCELLED,
    }
)


class CommandState(StrEnum):
    """Where a command stands as a whole (API.md § Fleet operations)."""

    RUNNING = "RUNNING"  # some delivery is not final yet
    COMPLETED = "COMPLETED"  # every delivery is final, whatever their statuses
    STOPPED = "STOPPED"  # a rollout's failure limit stopped it: its unsent targets CANCELLED
    CANCELLED = "CANCELLED"  # an operator cancelled it


class CommandType(StrEnum):
    CONFIG_UPDATE = "config-update"
    DEEP_TRACE = "deep-trace"
    REPLAY = "replay"


class TargetKind(StrEnum):
    AGENT = "agent"
    GROUP = "group"
    ALL = "all"


class AckStatus(StrEnum):
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"

    @property
    def delivery_status(self) -> DeliveryStatus:
        if self is AckStatus.SUCCESS:
            return DeliveryStatus.ACKNOWLEDGED
        return DeliveryStatus.FAILED


class HeartbeatOutcome(StrEnum):
    RECORDED = "recorded"
    REVIVED = "revived"  # recorded, and the agent was STALE or DEAD: it is LIVE again
    UNKNOWN = "unknown"  # no such agent
    SUPERSEDED = "superseded"  # the agent registered again since the caller's token was issued


@dataclass(slots=True)
class Agent:
    id: str
    name: str
    group: str
    version: str | None
    route_ids: list[str]
    capabilities: dict[str, Any]
    state: AgentState
    registered_at: float
    last_heartbeat_at: float
    state_changed_at: float
    # When the next lifecycle transition is due (None once DEAD).
    deadline: float | None
    # Raised by every registration; an agent token is good only for the current one.
    generation: int = 0
    # The outages that ended at or before this moment are already counted in ``deadline``
    # (a sweep postponed it for them; see core/grace.py). A heartbeat or a transition after
    # such a postponement leaves it: no deadline set after an outage is affected by it.
    grace_through: float | None = None


@dataclass(frozen=True, slots=True)
class Target:
    kind: TargetKind
    value: str | None = None


@dataclass(frozen=True, slots=True)
class Command:
    id: str
    type: CommandType
    payload: dict[str, Any]
    target: Target
    created_at: float
    # Without a rollout: ``created_at`` + the expiry. With one: None until the last target
    # has been sent (or the rollout stopped sending), then when its last delivery expires.
    expires_at: float | None
    created_by: str | None = None  # the operator token's subject; None with auth off
    # Written to a target's stream when it opens, while its delivery is still PENDING.
    deliver_on_connect: bool = False
    # Sent a window at a time (core/rollout.py); None: to every target at creation.
    rollout: RolloutPlan | None = None
    # Why it stopped early, once it did (STOPPED or CANCELLED); None otherwise.
    halted: CommandState | None = None

    def sent_at(self, delivery: Delivery) -> float | None:
        """When the delivery was sent: at creation without a rollout (the store keeps no
        per-delivery time then), else its own ``sent_at`` (None: not yet sent)."""
        return delivery.sent_at if self.rollout is not None else self.created_at

    def deadline(self, delivery: Delivery) -> float | None:
        """When the delivery expires: ``commandExpirySeconds`` after it was sent."""
        if self.rollout is None:
            return self.expires_at
        return None if delivery.sent_at is None else delivery.sent_at + self.rollout.expiry

    def as_sent(self, sent_at: float) -> Command:
        """The command as its targets sent at ``sent_at`` see it: their own ``expiresAt``
        (every target of a command without a rollout; one batch of a rollout)."""
        if self.rollout is None:
            return self
        return replace(self, expires_at=sent_at + self.rollout.expiry)


@dataclass(frozen=True, slots=True)
class AckResult:
    status: AckStatus
    message: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Delivery:
    agent_id: str
    status: DeliveryStatus = DeliveryStatus.PENDING
    delivered_at: float | None = None
    acknowledged_at: float | None = None
    result: AckResult | None = None
    # A rollout's deliveries only (see ``Command.sent_at``): None until the target is sent.
    sent_at: float | None = None


@dataclass(frozen=True, slots=True)
class CommandSnapshot:
    """A command with its deliveries, ordered by agent id, read at one moment."""

    command: Command
    deliveries: list[Delivery]

    def summary(self) -> dict[str, int]:
        counts = {status: 0 for status in DeliveryStatus}
        for delivery in self.deliveries:
            counts[delivery.status] += 1
        return {
            "targets": len(self.deliveries),
            "pending": counts[DeliveryStatus.PENDING],
            "delivered": counts[DeliveryStatus.DELIVERED],
            "acknowledged": counts[DeliveryStatus.ACKNOWLEDGED],
            "failed": counts[DeliveryStatus.FAILED],
            "expired": counts[DeliveryStatus.EXPIRED],
            "cancelled": counts[DeliveryStatus.CANCELLED],
        }

    def state(self) -> CommandState:
        if self.command.halted is not None:
            return self.command.halted
        if any(not delivery.status.is_final for delivery in self.deliveries):
            return CommandState.RUNNING
        return CommandState.COMPLETED


@dataclass(frozen=True, slots=True)
class RolloutStep:
    """What one claim of a rollout did, atomically: the targets it sent (their deliveries
    now carry ``sent_at``), or the unsent ones it CANCELLED when the failure limit stopped
    the rollout; ``command`` as it stands after it (None: no such command)."""

    command: Command | None
    sent: list[str] = field(default_factory=list)
    sent_at: float | None = None
    cancelled: list[Delivery] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Outage:
    """A gap in the lifecycle sweeps: none ran from ``started`` to ``ended`` (the store
    could not be reached, or the server was paused), so no heartbeat could count."""

    started: float
    ended: float

    @property
    def lasted(self) -> float:
        return self.ended - self.started


@dataclass(frozen=True, slots=True)
class SweepNote:
    """What noting a sweep in the store answers: the outage this sweep found (the gap since
    the previous sweep, if long enough), and every outage still remembered, oldest first."""

    found: Outage | None
    recent: list[Outage]


@dataclass(frozen=True, slots=True)
class Transition:
    agent_id: str
    from_state: AgentState
    to_state: AgentState
    at: float

"""What an agent's ack does to its delivery: the rules, apart from where they are applied.

A store applies them in one atomic step (``CommandStore.acknowledge``), so that an ack is
one round trip to a shared store, not a read and a compare-and-set. The memory store calls
these functions; the Redis store restates them in Lua (``ACKNOWLEDGE`` in
redis/rollout_scripts.py), and tests/stores pins that both agree.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from .models import AckResult, Command, Delivery, DeliveryStatus


class AckVerdict(StrEnum):
    RECORDED = "recorded"  # the delivery now holds the result
    REPEATED = "repeated"  # it already had the status this ack asks for: nothing changed
    ALREADY_FINAL = "already"  # acknowledged or failed before, the other way
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # expired, or its deadline has passed


@dataclass(frozen=True, slots=True)
class AckOutcome:
    verdict: AckVerdict
    command: Command
    delivery: Delivery  # as recorded when RECORDED, else as it was found


def judge_ack(
    command: Command, current: Delivery, wanted: DeliveryStatus, now: float
) -> AckVerdict:
    """Whether an ack asking for ``wanted`` at ``now`` may be recorded on ``current``."""
    if current.status is wanted:
        return AckVerdict.REPEATED
    if current.status in (DeliveryStatus.ACKNOWLEDGED, DeliveryStatus.FAILED):
        return AckVerdict.ALREADY_FINAL
    if current.status is DeliveryStatus.CANCELLED:
        return AckVerdict.CANCELLED
    deadline = command.deadline(current)
    if current.status is DeliveryStatus.EXPIRED or (deadline is not None and now >= deadline):
        return AckVerdict.EXPIRED
    return AckVerdict.RECORDED


def acknowledged(current: Delivery, result: AckResult, now: float) -> Delivery:
    """``current`` once the ack is recorded."""
    return replace(
        current, status=result.status.delivery_status, acknowledged_at=now, result=result
    )

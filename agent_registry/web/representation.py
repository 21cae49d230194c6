"""Records as the JSON the contract documents (camelCase, ISO timestamps)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..clock import iso
from ..core.models import (
    AckResult,
    Agent,
    AgentState,
    Command,
    CommandSnapshot,
    Delivery,
    DeliveryStatus,
)


def agent_json(agent: Agent, connected: bool) -> dict[str, Any]:
    return {
        "id": agent.id,
        "name": agent.name,
        "group": agent.group,
        "version": agent.version,
        "routeIds": agent.route_ids,
        "capabilities": agent.capabilities,
        "state": agent.state.value,
        "registeredAt": iso(agent.registered_at),
        "lastHeartbeatAt": iso(agent.last_heartbeat_at),
        "stateChangedAt": iso(agent.state_changed_at),
        "connected": connected,
    }


def result_json(result: AckResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {"status": result.status.value, "message": result.message, "details": result.details}


def delivery_json(delivery: Delivery, sent_at: str | None) -> dict[str, Any]:
    """``sent_at`` as ISO already: every delivery of a command without a rollout shares one."""
    return {
        "agentId": delivery.agent_id,
        "status": delivery.status.value,
        "sentAt": sent_at,
        "deliveredAt": iso(delivery.delivered_at),
        "acknowledgedAt": iso(delivery.acknowledged_at),
        "result": result_json(delivery.result),
    }


def agent_delivery_json(command: Command, delivery: Delivery) -> dict[str, Any]:
    return {
        "commandId": command.id,
        "type": command.type.value,
        "createdAt": iso(command.created_at),
        "expiresAt": iso(command.deadline(delivery)),
        **delivery_json(delivery, iso(command.sent_at(delivery))),
    }


def command_json(snapshot: CommandSnapshot) -> dict[str, Any]:
    command = snapshot.command
    # Without a rollout every delivery was sent at creation: one ISO string for them all.
    created = iso(command.created_at)
    if command.rollout is None:
        deliveries = [delivery_json(d, created) for d in snapshot.deliveries]
    else:
        deliveries = [delivery_json(d, iso(d.sent_at)) for d in snapshot.deliveries]
    return {
        "commandId": command.id,
        "type": command.type.value,
        "payload": command.payload,
        "target": {"kind": command.target.kind.value, "value": command.target.value},
        "createdAt": created,
        "expiresAt": iso(command.expires_at),
        "createdBy": command.created_by,
        "deliverOnConnect": command.deliver_on_connect,
        "state": snapshot.state().value,
        "rollout": rollout_json(snapshot),
        "summary": snapshot.summary(),
        "deliveries": deliveries,
    }


_FAILURES = (DeliveryStatus.FAILED, DeliveryStatus.EXPIRED)


def rollout_json(snapshot: CommandSnapshot) -> dict[str, Any] | None:
    """The rollout as resolved for its targets, and how far it got."""
    plan = snapshot.command.rollout
    if plan is None:
        return None
    sent = [d for d in snapshot.deliveries if d.sent_at is not None]
    return {
        "batchSize": plan.window,
        "maxFailures": plan.max_failures,
        "batchIntervalSeconds": plan.interval,
        "sent": len(sent),
        "inFlight": sum(1 for d in sent if not d.status.is_final),
        "failures": sum(1 for d in snapshot.deliveries if d.status in _FAILURES),
    }


def command_event_json(snapshot: CommandSnapshot) -> dict[str, Any]:
    """The command as the operator event stream sends it: its representation without
    ``deliveries`` (every other field the command has, whatever they are)."""
    data = command_json(snapshot)
    del data["deliveries"]
    return data


def fleet_json(counts: Mapping[AgentState, int], connected: int) -> dict[str, int]:
    """Agents per state, and how many have a stream open (``GET /api/v1/server``'s fleet)."""
    fleet = {state.value: counts.get(state, 0) for state in AgentState}
    fleet["connected"] = connected
    return fleet

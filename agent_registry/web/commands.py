"""Commands: send to one agent, a group or everyone; acknowledge; read."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Blueprint

from ..clock import iso
from ..core.models import AckResult, CommandType, Target, TargetKind
from ..security.access import Access
from ..security.tokens import Caller
from .declare import DeclaredView, Handler, declare
from .representation import agent_delivery_json, command_json, delivery_json
from .schemas import (
    AckSchema,
    AgentDeliverySchema,
    CommandSchema,
    DeliveryListQuery,
    DeliverySchema,
    SendCommandSchema,
)

if TYPE_CHECKING:
    from ..server.runtime import Runtime

bp = Blueprint("commands", __name__, url_prefix="/api/v1")


def send(
    rt: Runtime, target: Target, body: dict[str, Any], caller: Caller | None
) -> dict[str, Any]:
    sender = caller.subject if caller is not None else None
    snapshot = rt.commands.send(
        target,
        CommandType(body["type"]),
        body["payload"],
        sender,
        body["deliver_on_connect"],
        body["rollout"],
    )
    return command_json(snapshot)


def declare_send(summary: str) -> Callable[[Handler], DeclaredView]:
    return declare(
        summary,
        access=Access.SEND,
        status=202,
        body=SendCommandSchema(),
        response=CommandSchema(),
    )


@bp.post("/agents/<agent_id>/commands")
@declare_send("Send a command to one agent, in any state")
def send_to_agent(
    rt: Runtime, agent_id: str, body: dict[str, Any], caller: Caller | None
) -> dict[str, Any]:
    return send(rt, Target(TargetKind.AGENT, agent_id), body, caller)


@bp.post("/agents/groups/<group>/commands")
@declare_send("Send a command to a group's LIVE agents")
def send_to_group(
    rt: Runtime, group: str, body: dict[str, Any], caller: Caller | None
) -> dict[str, Any]:
    return send(rt, Target(TargetKind.GROUP, group), body, caller)


@bp.post("/agents/commands")
@declare_send("Send a command to every LIVE agent")
def send_to_all(rt: Runtime, body: dict[str, Any], caller: Caller | None) -> dict[str, Any]:
    return send(rt, Target(TargetKind.ALL), body, caller)


@bp.post("/agents/<agent_id>/commands/<command_id>/ack")
@declare(
    "Acknowledge a command (the body may be omitted: SUCCESS)",
    access=Access.AGENT,
    body=AckSchema(),
    body_optional=True,
    response=DeliverySchema(),
    fast=True,
)
def acknowledge(
    rt: Runtime, agent_id: str, command_id: str, body: dict[str, Any], caller: Caller | None
) -> dict[str, Any]:
    # The guard checked the caller (its token's generation included) before the view ran.
    result = AckResult(body["status"], body["message"], body["details"])
    command, delivery = rt.commands.acknowledge_command(agent_id, command_id, result)
    return delivery_json(delivery, iso(command.sent_at(delivery)))


@bp.get("/agents/<agent_id>/commands")
@declare(
    "An agent's deliveries, newest first",
    access=Access.READ,
    query=DeliveryListQuery(),
    response=AgentDeliverySchema(many=True),
)
def agent_deliveries(rt: Runtime, agent_id: str, query: dict[str, Any]) -> list[dict[str, Any]]:
    found = rt.commands.for_agent(agent_id, query["status"])
    return [agent_delivery_json(command, delivery) for command, delivery in found]


@bp.get("/commands/<command_id>")
@declare("A command with its deliveries", access=Access.READ, response=CommandSchema())
def get_command(rt: Runtime, command_id: str) -> dict[str, Any]:
    return command_json(rt.commands.get(command_id))

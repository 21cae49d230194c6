"""Fleet operations (API.md v1.1): delete an agent, prune DEAD agents, cancel a command."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint

from ..security.access import Access
from ..security.tokens import Caller
from .declare import declare
from .representation import command_json
from .schemas import CancelSchema, CommandSchema, PruneQuery, PruneResultSchema

if TYPE_CHECKING:
    from ..server.runtime import Runtime

bp = Blueprint("fleet", __name__, url_prefix="/api/v1")


def _who(caller: Caller | None) -> str | None:
    return caller.subject if caller is not None else None


@bp.delete("/agents/<agent_id>")
@declare(
    "Delete an agent: its stream ends, its open deliveries are CANCELLED, its tokens stop working",
    access=Access.ADMIN,
    status=204,
)
def delete_agent(rt: Runtime, agent_id: str, caller: Caller | None) -> None:
    rt.fleet.delete(agent_id, _who(caller))


@bp.delete("/agents")
@declare(
    "Delete every agent DEAD for at least deadForSeconds (status=DEAD is required)",
    access=Access.ADMIN,
    query=PruneQuery(),
    response=PruneResultSchema(),
)
def prune_agents(rt: Runtime, query: dict[str, Any], caller: Caller | None) -> dict[str, int]:
    return {"deleted": rt.fleet.prune(query["dead_for_seconds"], _who(caller))}


@bp.post("/commands/<command_id>/cancel")
@declare(
    "Cancel a command: every delivery not final becomes CANCELLED; open streams get the "
    "cancel event",
    access=Access.SEND,
    body=CancelSchema(),
    body_optional=True,
    response=CommandSchema(),
)
def cancel_command(
    rt: Runtime, command_id: str, body: dict[str, Any], caller: Caller | None
) -> dict[str, Any]:
    return command_json(rt.commands.cancel(command_id, _who(caller)))

"""Agents: register, heartbeat, list, get one, and the event stream."""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request, url_for

from ..clock import iso
from ..core.agent_query import AgentQuery
from ..core.models import Agent
from ..core.ports import Presence
from ..core.registry import Registration
from ..security.access import Access
from ..security.tokens import Caller
from ..streams.writer import event_stream
from .declare import Reply, declare
from .json_array import json_array
from .representation import agent_json
from .schemas import AgentListQuery, AgentSchema, RegisterSchema, RegistrationSchema

if TYPE_CHECKING:
    from ..server.runtime import Runtime

log = logging.getLogger(__name__)

bp = Blueprint("agents", __name__, url_prefix="/api/v1/agents")

# Agents per chunk of a big list: about 64 KB of JSON, and what the worker spends on one
# page between two turns of the others (read, decode, encode: ~7 ms on Redis, quiet machine).
LIST_PAGE = 200


@bp.post("/register")
@declare(
    "Register an agent, or resume a known id (agent restart)",
    access=Access.REGISTER,
    status=201,
    other_statuses=((200, "The id was known: its identity resumes"),),
    body=RegisterSchema(),
    response=RegistrationSchema(),
)
def register(rt: Runtime, body: dict[str, Any], caller: Caller | None) -> Reply:
    renewing = caller.generation if caller is not None else None
    agent, created = rt.registry.register(
        Registration(
            id=body["id"],
            group=body["group"],
            name=body["name"],
            version=body["version"],
            route_ids=tuple(body["route_ids"]),
            capabilities=body["capabilities"],
        ),
        renewing,
    )
    signer = rt.security.signer
    keys = signer.published() if signer is not None else None
    answer = {
        "agentId": agent.id,
        "sseEndpoint": url_for("agents.events", agent_id=agent.id, _external=True),
        "config": rt.settings.public_config(),
        "serverPublicKey": keys[0] if keys else None,
        "serverPublicKeys": keys,
    }
    issuer = rt.security.issuer
    if issuer is not None and caller is not None:
        token, expires_at = issuer.agent(
            agent.id, agent.generation, caller.groups, rt.security.agent_token_ttl
        )
        answer["accessToken"] = token
        answer["accessTokenExpiresAt"] = iso(expires_at)
        # A stream opened with an older token of this id (another copy, or this agent before
        # renewing) must stop receiving commands: it ends, on whichever process holds it.
        rt.bus.supersede(agent.id, agent.generation)
    return Reply(answer, 201 if created else 200)


@bp.post("/<agent_id>/heartbeat")
@declare(
    "Heartbeat: the agent is alive (any body is ignored)",
    access=Access.HEARTBEAT,
    status=204,
    fast=True,
)
def heartbeat(rt: Runtime, agent_id: str, caller: Caller | None) -> None:
    rt.registry.heartbeat(agent_id, caller.generation if caller is not None else None)


@bp.get("")
@declare(
    "List agents by id, filtered and keyset-paged",
    access=Access.READ,
    query=AgentListQuery(),
    response=AgentSchema(many=True),
)
def list_agents(rt: Runtime, query: dict[str, Any]) -> list[dict[str, Any]] | Response:
    wanted = AgentQuery(query["status"], query["group"], query["after"], query["limit"])
    pages = rt.registry.pages(wanted, size=LIST_PAGE)
    # Read before answering: a failure here is still an ordinary error answer (a 503).
    first: list[Agent] = []
    for page in pages:
        first.extend(page)
        if len(first) >= LIST_PAGE:
            break
    else:  # the whole answer fits in a page: built at once, with a Content-Length
        return agents_json(rt.presence, first)
    # A big answer: written a page at a time, the worker answering others in between.
    body = json_array(
        agents_json(rt.presence, first),
        (agents_json(rt.presence, page) for page in pages),
        "GET /api/v1/agents",
    )
    return Response(body, mimetype="application/json")


def agents_json(presence: Presence, agents: list[Agent]) -> list[dict[str, Any]]:
    connected = presence.connected(agent.id for agent in agents)
    return [agent_json(agent, agent.id in connected) for agent in agents]


@bp.get("/<agent_id>")
@declare("One agent", access=Access.READ, response=AgentSchema())
def get_agent(rt: Runtime, agent_id: str) -> dict[str, Any]:
    agent = rt.registry.get(agent_id)
    return agent_json(agent, rt.presence.is_connected(agent_id))


def client_socket(environ: dict[str, Any]) -> socket.socket | None:
    """The client's socket (gunicorn's gevent worker), to notice a client that left before
    a write fails; None under other servers, where only failed writes tell."""
    return environ.get("gunicorn.socket")


@bp.get("/<agent_id>/events")
@declare(
    "The agent's event stream (Server-Sent Events)",
    access=Access.AGENT,
    media_type="text/event-stream",
)
def events(rt: Runtime, agent_id: str, caller: Caller | None) -> Response:
    rt.registry.get(agent_id)
    last_event_id = request.headers.get("Last-Event-ID")
    if last_event_id:
        log.debug(
            "agent %s: reconnect with Last-Event-ID %s (nothing is replayed)",
            agent_id,
            last_event_id,
            extra={"agent_id": agent_id},
        )
    body = event_stream(
        rt.hub,
        agent_id,
        client_socket(request.environ),
        rt.settings.keepalive_seconds,
        rt.delivery_recorder,
        rt.deliver_on_connect,
        caller.generation if caller is not None else None,
    )
    return Response(
        body,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

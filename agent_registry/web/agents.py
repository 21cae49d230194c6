"""Agents: register, heartbeat, list, get one, and the event stream."""

from __future__ import annotations

import logging
import socket

from flask import Blueprint, Response, jsonify, request, url_for

from ..core.registry import Registration
from ..streams.writer import event_stream
from .representation import agent_json
from .requests import json_body, load, load_query, runtime
from .schemas import AgentListQuery, RegisterSchema

log = logging.getLogger(__name__)

bp = Blueprint("agents", __name__, url_prefix="/api/v1/agents")

_register_schema = RegisterSchema()
_list_query = AgentListQuery()


@bp.post("/register")
def register() -> tuple[Response, int]:
    data = load(_register_schema, json_body())
    rt = runtime()
    agent, created = rt.registry.register(
        Registration(
            id=data["id"],
            group=data["group"],
            name=data["name"],
            version=data["version"],
            route_ids=tuple(data["route_ids"]),
            capabilities=data["capabilities"],
        )
    )
    body = {
        "agentId": agent.id,
        "sseEndpoint": url_for("agents.events", agent_id=agent.id, _external=True),
        "config": rt.settings.public_config(),
        "serverPublicKey": None,
    }
    return jsonify(body), 201 if created else 200


@bp.post("/<agent_id>/heartbeat")
def heartbeat(agent_id: str) -> Response:
    runtime().registry.heartbeat(agent_id)
    response = Response(status=204)
    del response.headers["Content-Type"]  # no body, so no media type
    return response


@bp.get("")
def list_agents() -> Response:
    query = load_query(_list_query)
    rt = runtime()
    agents = rt.registry.list(
        states=query["status"], group=query["group"], after=query["after"], limit=query["limit"]
    )
    connected = rt.presence.connected(agent.id for agent in agents)
    return jsonify([agent_json(agent, agent.id in connected) for agent in agents])


@bp.get("/<agent_id>")
def get_agent(agent_id: str) -> Response:
    rt = runtime()
    agent = rt.registry.get(agent_id)
    return jsonify(agent_json(agent, rt.presence.is_connected(agent_id)))


def client_socket(environ: dict) -> socket.socket | None:
    """The client's socket (gunicorn's gevent worker), to notice a client that left before
    a write fails; None under other servers, where only failed writes tell."""
    return environ.get("gunicorn.socket")


@bp.get("/<agent_id>/events")
def events(agent_id: str) -> Response:
    rt = runtime()
    rt.registry.get(agent_id)
    last_event_id = request.headers.get("Last-Event-ID")
    if last_event_id:
        log.debug(
            "agent %s: reconnect with Last-Event-ID %s (nothing is replayed)",
            agent_id,
            last_event_id,
        )
    body = event_stream(
        rt.hub,
        agent_id,
        client_socket(request.environ),
        rt.settings.keepalive_seconds,
        rt.delivery_recorder,
    )
    return Response(
        body,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

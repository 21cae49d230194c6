"""Commands: send to one agent, a group or everyone; acknowledge; read."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ..core.models import AckResult, CommandType, Target, TargetKind
from .representation import agent_delivery_json, command_json, delivery_json
from .requests import json_body, load, load_query, runtime
from .schemas import AckSchema, DeliveryListQuery, SendCommandSchema

bp = Blueprint("commands", __name__, url_prefix="/api/v1")

_send_schema = SendCommandSchema()
_ack_schema = AckSchema()
_delivery_query = DeliveryListQuery()


def _send(target: Target) -> tuple[Response, int]:
    data = load(_send_schema, json_body())
    snapshot = runtime().commands.send(target, CommandType(data["type"]), data["payload"])
    return jsonify(command_json(snapshot)), 202


@bp.post("/agents/<agent_id>/commands")
def send_to_agent(agent_id: str) -> tuple[Response, int]:
    return _send(Target(TargetKind.AGENT, agent_id))


@bp.post("/agents/groups/<group>/commands")
def send_to_group(group: str) -> tuple[Response, int]:
    return _send(Target(TargetKind.GROUP, group))


@bp.post("/agents/commands")
def send_to_all() -> tuple[Response, int]:
    return _send(Target(TargetKind.ALL))


@bp.post("/agents/<agent_id>/commands/<command_id>/ack")
def acknowledge(agent_id: str, command_id: str) -> Response:
    data = load(_ack_schema, json_body(optional=True))
    result = AckResult(data["status"], data["message"], data["details"])
    delivery = runtime().commands.acknowledge(agent_id, command_id, result)
    return jsonify(delivery_json(delivery))


@bp.get("/agents/<agent_id>/commands")
def agent_deliveries(agent_id: str) -> Response:
    query = load_query(_delivery_query)
    found = runtime().commands.for_agent(agent_id, query["status"])
    return jsonify([agent_delivery_json(command, delivery) for command, delivery in found])


@bp.get("/commands/<command_id>")
def get_command(command_id: str) -> Response:
    return jsonify(command_json(runtime().commands.get(command_id)))

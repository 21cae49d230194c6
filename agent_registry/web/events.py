"""The operator event stream (API.md v1.1): what happens to the fleet, as it happens."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request

from ..security.access import Access
from ..streams.operator_hub import operator_event_stream
from .agents import client_socket
from .declare import declare
from .schemas import OperatorEventsQuery

if TYPE_CHECKING:
    from ..server.runtime import Runtime

bp = Blueprint("events", __name__, url_prefix="/api/v1")


@bp.get("/events")
@declare(
    "The operator event stream (Server-Sent Events): fleet counts, agent changes, command progress",
    access=Access.READ,
    query=OperatorEventsQuery(),
    media_type="text/event-stream",
)
def operator_events(rt: Runtime, query: dict[str, Any]) -> Response:
    # Read before answering: a store outage is still an ordinary 503, not a broken stream.
    first = rt.operator_events.fleet_now()
    body = operator_event_stream(
        rt.operator_hub,
        client_socket(request.environ),
        query["group"],
        rt.settings.keepalive_seconds,
        first,
        rt.operator_events.stream_opened,
    )
    return Response(
        body,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

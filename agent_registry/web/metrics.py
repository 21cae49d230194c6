"""``GET /metrics``: the Prometheus text exposition, outside ``/api/v1`` and never behind auth.

The metrics themselves live on the runtime (``server/metrics.py``); this view only serves
them, so the web layer never imports ``prometheus_client``. With
``AGENT_REGISTRY_METRICS=off`` the answer is ``404`` in the JSON error shape: a scraper
pointed at a server that measures nothing fails loudly instead of reading an empty page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, Response, jsonify

from ..security.access import Access
from .declare import declare

if TYPE_CHECKING:
    from ..server.runtime import Runtime

bp = Blueprint("metrics", __name__)

METRICS_OFF = "Metrics are off on this server (AGENT_REGISTRY_METRICS=off)."


@bp.get("/metrics")
@declare(
    "Prometheus metrics of this host's workers (text exposition format)",
    access=Access.PUBLIC,
    media_type="text/plain",
)
def metrics(rt: Runtime) -> Response:
    if rt.metrics is None:
        response = jsonify(
            {"status": 404, "error": "Not Found", "code": "NOT_FOUND", "message": METRICS_OFF}
        )
        response.status_code = 404
        return response
    body, content_type = rt.metrics.exposition()
    return Response(body, status=200, headers={"Content-Type": content_type})

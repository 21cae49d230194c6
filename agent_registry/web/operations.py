"""Operations: liveness and readiness probes, and what this server is.

``/healthz`` and ``/readyz`` live outside ``/api/v1`` (load balancers and Kubernetes probe
them; they take no protocol version and, once auth exists, no token). ``/readyz`` answers
503 while the store does not answer or the worker is draining (SIGTERM), so a load
balancer takes the worker out before its streams end. ``GET /api/v1/server`` reads the
fleet counts that the stores keep up to date: O(1) at any fleet size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint

from .. import package_version
from ..security.access import Access
from .declare import Reply, declare
from .representation import fleet_json
from .schemas import HealthSchema, ReadinessSchema, ServerSchema

if TYPE_CHECKING:
    from ..server.runtime import Runtime

bp = Blueprint("operations", __name__)


@bp.get("/healthz")
@declare("Liveness: the process serves requests", access=Access.PUBLIC, response=HealthSchema())
def healthz(_rt: Runtime) -> dict[str, str]:
    return {"status": "ok"}


@bp.get("/readyz")
@declare(
    "Readiness: the store answers and the worker is not shutting down",
    access=Access.PUBLIC,
    other_statuses=((503, "Not ready: the failing checks are named in checks"),),
    response=ReadinessSchema(),
)
def readyz(rt: Runtime) -> Reply:
    checks = rt.readiness()
    ready = all(outcome == "ok" for outcome in checks.values())
    return Reply(
        {"status": "ready" if ready else "unready", "checks": checks}, 200 if ready else 503
    )


@bp.get("/api/v1/server")
@declare(
    "This server: version, store, security, registration config and fleet counts",
    access=Access.READ,
    response=ServerSchema(),
)
def server(rt: Runtime) -> dict[str, Any]:
    return {
        "version": package_version(),
        "store": "memory" if rt.settings.uses_memory_store else "redis",
        "auth": "on" if rt.security.auth else "off",
        "signing": {"keyId": signer.key_id} if (signer := rt.security.signer) else None,
        "config": rt.settings.public_config(),
        "fleet": fleet_json(rt.registry.counts(), rt.presence.connected_count()),
    }

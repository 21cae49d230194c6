"""Enrollment tokens minted over the API, for an admin who has no shell with the secret."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from flask import Blueprint

from ..clock import iso
from ..errors import NotAvailable
from ..security.access import Access
from ..security.tokens import ALL_GROUPS, Caller
from .declare import declare
from .schemas import EnrollmentTokenRequestSchema, IssuedTokenSchema

if TYPE_CHECKING:
    from ..server.runtime import Runtime

log = logging.getLogger(__name__)

bp = Blueprint("tokens", __name__, url_prefix="/api/v1/tokens")


@bp.post("/enrollment")
@declare(
    "Create an enrollment token (admin): agents register with it",
    access=Access.ENROLL,
    status=201,
    body=EnrollmentTokenRequestSchema(),
    response=IssuedTokenSchema(),
)
def create_enrollment_token(
    rt: Runtime, body: dict[str, Any], caller: Caller | None
) -> dict[str, Any]:
    issuer = rt.security.issuer
    if issuer is None or caller is None:
        raise NotAvailable("Tokens are issued only with AGENT_REGISTRY_AUTH=on.")
    groups = None if ALL_GROUPS in body["groups"] else body["groups"]
    # The token names the admin who made it (``sub``), for whoever audits an enrollment.
    token, expires_at = issuer.enrollment(groups, body["ttl_seconds"], caller.subject)
    log.info(
        "enrollment token for %s made by %s, expires %s",
        ", ".join(groups) if groups else "every group",
        caller.subject,
        iso(expires_at),
    )
    return {"token": token, "expiresAt": iso(expires_at)}

"""Who may do what (API.md, Security, "What each caller may do"), as plain rules.

Each view declares one ``Access``; the web layer's guard (``web/auth.py``) verifies the token
first (401), then, once the request is valid, asks these rules (403). The rules see only the
verified caller and what the request names; the one fact they need from a store (the group
of a single target agent) is handed in by the guard.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import Enum

from ..errors import Forbidden
from .tokens import Caller, Role, TokenKind


class Access(Enum):
    PUBLIC = "public"  # probes, metrics, the OpenAPI document: never a token
    READ = "read"  # reads of agents, commands, deliveries, the server: any operator role
    SEND = "send"  # send (or cancel) a command: operator or admin, with the target's group
    ADMIN = "admin"  # delete and prune agents
    ENROLL = "enroll"  # create enrollment tokens: an admin, for groups it may reach
    REGISTER = "register"  # an enrollment token, or the agent's own token (renewal)
    AGENT = "agent"  # event stream, ack: the agent's own token
    # The heartbeat: the agent's own token, whose generation the heartbeat's own store
    # write checks (one store operation per heartbeat, not two).
    HEARTBEAT = "heartbeat"

    @property
    def names_caller(self) -> bool:
        """Whether the view is handed the caller (``caller=``): it records, logs or checks it."""
        return self in (
            Access.SEND,
            Access.ADMIN,
            Access.ENROLL,
            Access.REGISTER,
            Access.AGENT,
            Access.HEARTBEAT,
        )

    @property
    def checks_generation_first(self) -> bool:
        """Whether an agent token's generation is checked right after its signature, so
        that a retired token is 401 before any other check (the heartbeat checks it in its
        store write instead)."""
        return self in (Access.AGENT, Access.REGISTER)


SENDING_ROLES = (Role.OPERATOR, Role.ADMIN)


def require_operator(caller: Caller, *roles: Role) -> None:
    if caller.kind is not TokenKind.OPERATOR:
        raise Forbidden(f"This request needs an operator token; this is an {caller.kind} token.")
    if roles and caller.role not in roles:
        raise Forbidden(
            f"Role '{caller.role}' may not do this; it needs "
            + " or ".join(f"'{role}'" for role in roles)
            + "."
        )


def require_sender(caller: Caller, group: str | None, *, every_group: bool = False) -> None:
    """May send to ``group`` (a group target, or a single agent's group); ``every_group``
    for a command to all agents. ``group`` None means the single agent is unknown: only a
    caller who may reach every group learns that (the view answers 404)."""
    require_operator(caller, *SENDING_ROLES)
    if caller.groups is None:
        return
    if every_group:
        raise Forbidden("Sending to all agents needs a token for every group ('*').")
    if group is None or not caller.may_reach(group):
        raise Forbidden("This token's groups do not include the target's group.")


def require_enroller(caller: Caller, groups: Collection[str]) -> None:
    """An admin may mint enrollment tokens for the groups it may reach only."""
    require_operator(caller, Role.ADMIN)
    if caller.groups is None:
        return
    beyond = sorted(group for group in groups if not caller.may_reach(group))
    if beyond:
        raise Forbidden(
            "This token may not create enrollment tokens for: " + ", ".join(beyond) + "."
        )


def require_agent(caller: Caller, agent_id: str) -> None:
    if caller.kind is not TokenKind.AGENT:
        raise Forbidden(
            f"This request needs the agent's own token; this is an {caller.kind} token."
        )
    if caller.subject != agent_id:
        raise Forbidden(f"This token belongs to agent '{caller.subject}', not '{agent_id}'.")


def require_registrar(caller: Caller, agent_id: str, group: str) -> None:
    """An enrollment token allowing ``group``, or the agent's own token (a renewal) whose
    enrollment allowed it."""
    if caller.kind is TokenKind.OPERATOR:
        raise Forbidden("Registering needs an enrollment token or the agent's own token.")
    if caller.kind is TokenKind.AGENT:
        require_agent(caller, agent_id)
    if not caller.may_reach(group):
        raise Forbidden(f"This token may not register agents into group '{group}'.")

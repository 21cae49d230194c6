"""The request pipeline's guard: bearer tokens in, a verified caller out, or a refusal.

One guard for every request, fast path or Flask. ``authenticate`` runs before every other
check (401); ``authorize`` runs once the request is valid and before the view looks
anything up (403), so that a ``404`` never tells a caller without the scope whether an
agent or group exists. A refused request reaches no view, so it changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..core.models import TargetKind
from ..errors import AuthRefused, Unauthenticated
from ..security.access import (
    SENDING_ROLES,
    Access,
    require_agent,
    require_enroller,
    require_operator,
    require_registrar,
    require_sender,
)
from ..security.tokens import Caller, Role, TokenKind, TokenVerifier

if TYPE_CHECKING:
    from ..core.commands import Commands
    from ..core.registry import Registry
    from .pipeline import Call

log = logging.getLogger(__name__)

API_PREFIX = "/api/"


class Guard:
    def __init__(self, verifier: TokenVerifier, registry: Registry, commands: Commands) -> None:
        self._verifier = verifier
        self._registry = registry
        self._commands = commands

    def authenticate(self, call: Call, access: Access | None) -> None:
        """Verify the bearer token and set ``call.caller``. ``access`` None is a path no
        route serves: under /api it still needs a token, so that 404 and 405 tell nothing."""
        if access is Access.PUBLIC or (access is None and not call.path.startswith(API_PREFIX)):
            return
        try:
            caller = call.caller = self._verifier.verify(_bearer_token(call.environ))
            agent_id = caller.subject if caller.kind is TokenKind.AGENT else None
            if agent_id is not None and access is not None and access.checks_generation_first:
                self._registry.check_generation(agent_id, caller.generation)
        except AuthRefused as exc:
            log.info(
                "refused %s %s from %s: %s (%s)",
                call.method,
                call.path,
                call.environ.get("REMOTE_ADDR", "?"),
                exc.message,
                exc.reason,
            )
            raise

    def authorize(self, call: Call, access: Access, inputs: Mapping[str, Any]) -> None:
        caller = call.caller
        if caller is None:
            return
        try:
            _authorize(caller, access, call.path_args, inputs, self._registry, self._commands)
        except AuthRefused as exc:
            agent_id = call.path_args.get("agent_id")
            log.info(
                "refused %s %s for %s %s from %s: %s",
                call.method,
                call.path,
                caller.kind,
                caller.subject,
                call.environ.get("REMOTE_ADDR", "?"),
                exc.message,
                extra={"agent_id": agent_id} if agent_id is not None else None,
            )
            raise


def _authorize(
    caller: Caller,
    access: Access,
    path_args: Mapping[str, Any],
    inputs: Mapping[str, Any],
    registry: Registry,
    commands: Commands,
) -> None:
    if access is Access.READ:
        require_operator(caller)
    elif access is Access.ADMIN:
        require_operator(caller, Role.ADMIN)
    elif access is Access.ENROLL:
        require_enroller(caller, inputs["body"]["groups"])
    elif access in (Access.AGENT, Access.HEARTBEAT):
        require_agent(caller, path_args["agent_id"])
    elif access is Access.REGISTER:
        body = inputs["body"]
        require_registrar(caller, body["id"], body["group"])
    elif access is Access.SEND:
        if "command_id" in path_args:
            _authorize_command(caller, path_args["command_id"], registry, commands)
        elif "agent_id" in path_args:
            require_operator(caller, *SENDING_ROLES)
            # Only a caller limited to some groups needs the agent's group looked up.
            agent = registry.store.get(path_args["agent_id"]) if caller.groups else None
            require_sender(caller, agent.group if agent is not None else None)
        else:
            group = path_args.get("group")
            require_sender(caller, group, every_group=group is None)


def _authorize_command(
    caller: Caller, command_id: str, registry: Registry, commands: Commands
) -> None:
    """As for sending the command (cancel): its target's group decides. An unknown command
    is refused like an unknown agent, so a caller without the scope cannot learn whether
    it exists; only a caller limited to some groups needs the command looked up."""
    require_operator(caller, *SENDING_ROLES)
    if caller.groups is None:
        return
    command = commands.store.get_command(command_id)
    if command is None:
        require_sender(caller, None)
    elif command.target.kind is TargetKind.ALL:
        require_sender(caller, None, every_group=True)
    elif command.target.kind is TargetKind.GROUP:
        require_sender(caller, command.target.value)
    else:
        assert command.target.value is not None
        agent = registry.store.get(command.target.value)
        require_sender(caller, agent.group if agent is not None else None)


def _bearer_token(environ: Mapping[str, Any]) -> str:
    header: str | None = environ.get("HTTP_AUTHORIZATION")
    if not header:
        hint = (
            " Tokens are never read from the query string."
            if "token" in environ.get("QUERY_STRING", "").lower()
            else ""
        )
        raise Unauthenticated(
            "This request needs a token: send 'Authorization: Bearer <token>'." + hint,
            reason="missing",
        )
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "The Authorization header must be 'Bearer <token>'.", reason="malformed"
        )
    return token.strip()

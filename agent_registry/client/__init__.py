"""Python SDK for Agent Registry: ``AgentClient`` for agents, ``RegistryApi`` for scripts.

See docs/writing-an-agent.md.
"""

from __future__ import annotations

from .agent import AgentClient
from .api import ApiError, RegistryApi, RegistryClientError, Rollout, ServerUnreachable
from .backoff import Backoff
from .commands import FAILURE, SUCCESS, Command, CommandFailed, Handler, Result

__all__ = [
    "FAILURE",
    "SUCCESS",
    "AgentClient",
    "ApiError",
    "Backoff",
    "Command",
    "CommandFailed",
    "Handler",
    "RegistryApi",
    "RegistryClientError",
    "Result",
    "Rollout",
    "ServerUnreachable",
]

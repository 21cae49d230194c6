"""Agent Registry: the control plane a fleet of monitoring agents talks to.

``create_app`` is imported lazily, so that the agent SDK and the CLI
(``agent_registry.client``) do not load Flask, gevent and the server with them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server.app import create_app

__all__ = ["create_app", "package_version"]


def package_version() -> str:
    """The installed package's version (the OpenAPI document and /api/v1/server state it)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("agent-registry")
    except PackageNotFoundError:
        return "0.0.0"


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .server.app import create_app

        return create_app
    raise AttributeError(f"module 'agent_registry' has no attribute {name!r}")

"""Settings: loaded once, validated, typed.

Sources, later ones winning: the defaults below, the caller's mapping (Flask config passed
to ``create_app``), then ``AGENT_REGISTRY_*`` environment variables. A bad value raises
:class:`ConfigError` naming the variable, so the server refuses to start instead of running
with a setting nobody asked for.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

PREFIX = "AGENT_REGISTRY_"


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    heartbeat_interval_seconds: float = 30.0
    stale_after_seconds: float = 90.0
    dead_after_seconds: float = 300.0
    command_expiry_seconds: float = 60.0
    keepalive_seconds: float = 15.0
    sweep_interval_seconds: float = 1.0
    command_retention_seconds: float = 3600.0
    max_body_bytes: int = 65536
    store: str = "memory"
    trusted_proxies: int = 0
    stream_queue_size: int = 256
    # Events one operator stream (GET /api/v1/events) may queue before the server ends it:
    # it sees the whole fleet, so a mass transition is one event per agent.
    operator_stream_queue_size: int = 4096
    # Logs (docs/deployment.md#logs): one JSON object per line, and one line per request.
    log_format: str = "text"
    access_log: bool = False
    metrics: bool = True  # AGENT_REGISTRY_METRICS=on|off: Prometheus metrics and /metrics
    # Security (API.md v1.1; docs/security.md). Checked together by security/setup.py.
    auth: bool = False
    token_secret: str | None = None
    operator_public_key_file: str | None = None
    agent_token_ttl_seconds: float = 86400.0
    signing_key_file: str | None = None

    @property
    def uses_memory_store(self) -> bool:
        return self.store == "memory"

    def public_config(self) -> dict[str, float]:
        """The timing an agent needs, as returned by registration."""
        return {
            "heartbeatIntervalSeconds": _plain(self.heartbeat_interval_seconds),
            "staleAfterSeconds": _plain(self.stale_after_seconds),
            "deadAfterSeconds": _plain(self.dead_after_seconds),
            "commandExpirySeconds": _plain(self.command_expiry_seconds),
            "keepaliveSeconds": _plain(self.keepalive_seconds),
        }


def _plain(value: float) -> float | int:
    """30.0 -> 30, so the JSON reads like the documentation."""
    return int(value) if float(value).is_integer() else value


def _positive_seconds(raw: Any) -> float:
    value = float(raw)
    if not math.isfinite(value) or value <= 0:
        raise ValueError("must be a positive number of seconds")
    return value


def _int_at_least(minimum: int) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        if isinstance(raw, float) and not raw.is_integer():
            raise ValueError("must be a whole number")
        value = int(raw)
        if value < minimum:
            raise ValueError(f"must be at least {minimum}")
        return value

    return parse


def _store(raw: Any) -> str:
    value = str(raw).strip()
    if value == "memory" or value.startswith(("redis://", "rediss://", "unix://")):
        return value
    raise ValueError("must be 'memory' or a redis:// URL (redis://host:port/db)")


LOG_FORMATS = ("text", "json")


def log_format(raw: Any) -> str:
    value = str(raw).strip().lower()
    if value not in LOG_FORMATS:
        raise ValueError("must be 'text' or 'json'")
    return value


def _on_off(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    value = str(raw).strip().lower()
    if value not in ("on", "off"):
        raise ValueError("must be 'on' or 'off'")
    return value == "on"


MIN_SECRET_BYTES = 32


def _secret(raw: Any) -> str:
    value = str(raw)
    if len(value.encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes")
    return value


def _path(raw: Any) -> str:
    value = str(raw).strip()
    if not value:
        raise ValueError("must be a file path")
    return value


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "heartbeat_interval_seconds": _positive_seconds,
    "stale_after_seconds": _positive_seconds,
    "dead_after_seconds": _positive_seconds,
    "command_expiry_seconds": _positive_seconds,
    "keepalive_seconds": _positive_seconds,
    "sweep_interval_seconds": _positive_seconds,
    "command_retention_seconds": _positive_seconds,
    "max_body_bytes": _int_at_least(1024),
    "store": _store,
    "trusted_proxies": _int_at_least(0),
    "stream_queue_size": _int_at_least(1),
    "operator_stream_queue_size": _int_at_least(1),
    "log_format": log_format,
    "access_log": _on_off,
    "metrics": _on_off,
    "auth": _on_off,
    "token_secret": _secret,
    "operator_public_key_file": _path,
    "agent_token_ttl_seconds": _positive_seconds,
    "signing_key_file": _path,
}


def variable_name(field_name: str) -> str:
    return PREFIX + field_name.upper()


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build validated settings from defaults, ``overrides`` and the environment.

    ``overrides`` uses the same names as the environment (``AGENT_REGISTRY_STORE``).
    """
    environ = os.environ if environ is None else environ
    overrides = overrides or {}
    values: dict[str, Any] = {}
    for field in fields(Settings):
        name = variable_name(field.name)
        for source in (overrides, environ):
            if name not in source:
                continue
            raw = source[name]
            try:
                values[field.name] = _PARSERS[field.name](raw)
            except (TypeError, ValueError) as exc:
                reason = str(exc) if _is_own_reason(exc) else "must be a number"
                shown = "(hidden)" if field.name == "token_secret" else repr(raw)
                raise ConfigError(f"{name}={shown} is invalid: {reason}") from None
    return Settings(**values)


def _is_own_reason(exc: Exception) -> bool:
    return str(exc).startswith("must ")

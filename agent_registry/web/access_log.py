"""The access log (``AGENT_REGISTRY_ACCESS_LOG=on``): one line per request, from the pipeline.

A request hook, so every request gets exactly one line whichever way it is answered (a
fast view, a Flask view, an error, an unknown URL): the method, the route template (the
path when no route matched), the status, the time until the answer started, and the
agent and command ids of the path as fields. For an event stream that time is until its
headers left, not how long it stayed open (the stream's own lines say that).
Off by default: then no hook is installed and a request pays nothing for it.
"""

from __future__ import annotations

import logging
import time

from .pipeline import Call, Headers

log = logging.getLogger("agent_registry.access")

ID_ARGUMENTS = ("agent_id", "command_id")


class AccessLog:
    """A ``RequestHook``; install it first, so that it sees requests other hooks refuse."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self._log = logger

    def before(self, call: Call) -> None:
        pass

    def after(self, call: Call, status: int, headers: Headers) -> None:
        duration_ms = round((time.perf_counter() - call.started) * 1000, 3)
        route = call.route or call.path
        fields: dict[str, object] = {
            "method": call.method,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
        }
        ids = ""
        for name in ID_ARGUMENTS:
            value = call.path_args.get(name)
            if value is not None:
                fields[name] = value
                ids += f" {name}={value}"
        self._log.info(
            "%s %s %d %.2fms%s", call.method, route, status, duration_ms, ids, extra=fields
        )

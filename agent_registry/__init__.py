"""Agent Registry: the control plane a fleet of monitoring agents talks to."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .clock import Clock, system_clock
from .config import load_settings
from .runtime import Runtime

__all__ = ["create_app"]


def create_app(config: Mapping[str, Any] | None = None, *, clock: Clock = system_clock) -> Flask:
    """Build the WSGI app. ``config`` takes the same names as the environment.

    Background work (sweeps) is not started here: the server worker calls
    ``app.extensions["agent_registry"].start()`` (see ``gunicorn_settings``).
    """
    settings = load_settings(config)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    runtime = Runtime(settings, clock)
    app.extensions["agent_registry"] = runtime
    from .web.hot_paths import HotPaths

    app.wsgi_app = HotPaths(app.wsgi_app, runtime)  # type: ignore[method-assign]
    if settings.trusted_proxies:
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops
        )
    from . import web

    web.init_app(app)
    return app

"""The Flask app factory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .. import web
from ..clock import Clock, system_clock
from ..config import load_settings
from ..web.hot_paths import HotPaths
from .runtime import Runtime


def create_app(config: Mapping[str, Any] | None = None, *, clock: Clock = system_clock) -> Flask:
    """Build the WSGI app. ``config`` takes the same names as the environment.

    Background work (sweeps, the Redis bus) is not started here: the server worker calls
    ``app.extensions["agent_registry"].start()`` (see ``gunicorn_settings``).
    """
    settings = load_settings(config)
    app = Flask("agent_registry")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    runtime = Runtime(settings, clock)
    app.extensions["agent_registry"] = runtime
    app.wsgi_app = HotPaths(app.wsgi_app, runtime)  # type: ignore[method-assign]
    if settings.trusted_proxies:
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops
        )
    web.init_app(app)
    return app

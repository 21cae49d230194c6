"""The Flask app factory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .. import web
from ..clock import Clock, system_clock
from ..config import load_settings
from ..web.access_log import AccessLog
from ..web.auth import Guard
from ..web.pipeline import RequestPipeline
from .runtime import Runtime

PIPELINE_KEY = "agent_registry.pipeline"


def create_app(
    config: Mapping[str, Any] | None = None,
    *,
    clock: Clock = system_clock,
    fast_paths: bool = True,
) -> Flask:
    """Build the WSGI app. ``config`` takes the same names as the environment.

    Every request passes one ``RequestPipeline`` (``app.extensions[PIPELINE_KEY]``, whose
    ``hooks`` every request runs). ``fast_paths=False`` sends the views declared fast
    through Flask too: the tests compare both ways.

    Background work (sweeps, the Redis bus) is not started here: the server worker calls
    ``app.extensions["agent_registry"].start()`` (see ``gunicorn_settings``).
    """
    settings = load_settings(config)
    app = Flask("agent_registry")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    runtime = Runtime(settings, clock)
    app.extensions["agent_registry"] = runtime
    web.init_app(app)
    pipeline = RequestPipeline(app.wsgi_app, app, runtime, fast=fast_paths)
    app.extensions[PIPELINE_KEY] = pipeline
    if settings.access_log:
        # First, so that its line covers requests a later hook refuses.
        pipeline.hooks.insert(0, AccessLog())
    if runtime.metrics is not None:
        pipeline.hooks.append(runtime.metrics.http)
    verifier = runtime.security.verifier
    if verifier is not None:
        pipeline.guard = Guard(verifier, runtime.registry, runtime.commands)
    app.wsgi_app = pipeline  # type: ignore[method-assign]
    if settings.trusted_proxies:
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops
        )
    return app

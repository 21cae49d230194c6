"""The HTTP adapter: Flask blueprints over the core, one error handler."""

from __future__ import annotations

from flask import Flask

from . import agents, commands, errors, requests


def init_app(app: Flask) -> None:
    requests.init_app(app)
    errors.init_app(app)
    app.register_blueprint(agents.bp)
    app.register_blueprint(commands.bp)

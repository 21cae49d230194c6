"""The HTTP adapter: one request pipeline in front of Flask blueprints, one error mapping."""

from __future__ import annotations

from flask import Flask

from . import agents, commands, errors, events, fleet, metrics, openapi, operations, tokens, ui


def init_app(app: Flask) -> None:
    errors.init_app(app)
    app.register_blueprint(agents.bp)
    app.register_blueprint(commands.bp)
    app.register_blueprint(events.bp)
    app.register_blueprint(fleet.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(operations.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(tokens.bp)
    app.register_blueprint(ui.bp)

"""The ``agent-registry`` command."""

from __future__ import annotations

import os
import sys

import click

SETTINGS_MODULE = "python:agent_registry.gunicorn_settings"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Agent Registry: the control plane for a fleet of monitoring agents."""


@main.command()
@click.option("--bind", envvar="AGENT_REGISTRY_BIND", default="0.0.0.0:8080", show_default=True,
              help="Address to listen on (AGENT_REGISTRY_BIND).")
@click.option("--workers", envvar="WEB_CONCURRENCY", default=1, show_default=True, type=int,
              help="gevent worker processes (WEB_CONCURRENCY); >1 needs a Redis store.")
def serve(bind: str, workers: int) -> None:
    """Run the server under gunicorn with gevent workers (what `make run` starts)."""
    os.environ["AGENT_REGISTRY_BIND"] = bind
    os.environ["WEB_CONCURRENCY"] = str(workers)
    argv = [sys.executable, "-m", "gunicorn", "-c", SETTINGS_MODULE]
    os.execv(sys.executable, argv)

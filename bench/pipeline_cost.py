"""In-process cost of one heartbeat and one ack through the request pipeline, no HTTP.

``python -m bench.pipeline_cost`` calls the WSGI app directly with a minimal environ, with
the fast views on and with every request sent through Flask (``fast_paths=False``), and
prints microseconds per call. It isolates what the app adds to a request from what the HTTP
server costs, which ``make bench`` measures as a whole. Each figure is taken with metrics on
and off (``AGENT_REGISTRY_METRICS``); ``--multiprocess`` sets ``PROMETHEUS_MULTIPROC_DIR``
to a temporary directory first, so metrics write to files as under gunicorn.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

from agent_registry import create_app

log = logging.getLogger("bench")

HEARTBEATS = 20_000
ACKS = 3_000


def _environ(path: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "CONTENT_LENGTH": "0",
    }


def _ignore(*_args: object) -> None:
    return None


def _per_call(app: Callable[..., Any], paths: list[str]) -> float:
    started = time.perf_counter()
    for path in paths:
        for _ in app(_environ(path), _ignore):
            pass
    return (time.perf_counter() - started) / len(paths) * 1e6


def measure(fast: bool, metrics: bool = True) -> dict[str, float]:
    app = create_app({"AGENT_REGISTRY_METRICS": "on" if metrics else "off"}, fast_paths=fast)
    client = app.test_client()
    client.post("/api/v1/agents/register", json={"id": "a-1", "group": "g"})
    sent = [
        client.post("/api/v1/agents/a-1/commands", json={"type": "replay"}).json["commandId"]
        for _ in range(ACKS)
    ]
    return {
        "heartbeat_us": _per_call(app.wsgi_app, ["/api/v1/agents/a-1/heartbeat"] * HEARTBEATS),
        "ack_without_body_us": _per_call(
            app.wsgi_app, [f"/api/v1/agents/a-1/commands/{cid}/ack" for cid in sent]
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline_cost", description=__doc__)
    parser.add_argument(
        "--multiprocess",
        action="store_true",
        help="metrics in prometheus_client's multiprocess mode (files), as under gunicorn",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")  # the app's lines: quiet
    log.setLevel(logging.INFO)
    if args.multiprocess:
        # Before anything imports prometheus_client: it picks its value class on import.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pipeline-cost-")
    for fast in (True, False):
        for metrics in (True, False):
            figures = measure(fast, metrics)
            log.info(
                "%-13s  metrics %-3s  heartbeat %6.1f us  ack (no body) %6.1f us",
                "fast views" if fast else "through Flask",
                "on" if metrics else "off",
                figures["heartbeat_us"],
                figures["ack_without_body_us"],
            )


if __name__ == "__main__":
    main()

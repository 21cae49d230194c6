"""The floor: the least a Flask app on gunicorn + gevent can do for the five hot paths.

register, heartbeat, the event stream, a broadcast and an ack, and nothing else: no
validation, no delivery tracking (an ack is kept in a dict), no scheduler, no logging.
Every benchmark figure of the real server is also given as a ratio to this app measured in
the same run, so that what the server's own design costs stands apart from what Flask,
gunicorn and gevent cost on this machine.

This file is both the app and its gunicorn configuration::

    gunicorn -c bench/floor_app.py        # AGENT_REGISTRY_BIND=127.0.0.1:PORT

The server settings are the real server's (imported from
``agent_registry.server.gunicorn_settings``): gevent worker, ``worker_connections`` 20 000, one
worker, same keepalive, timeouts and ``max_requests``. The hooks are reduced to what the
real ones do for the server itself (open-files limit, ``gc.freeze()`` after start-up, end
the streams when the worker stops); the app-specific ones (config validation, sweeps) are
left out.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import resource
import uuid
from typing import Any

from agent_registry.server import gunicorn_settings as _real

# --------------------------------------------------------------------------- gunicorn config

wsgi_app = "bench.floor_app:create_app()"
bind = [os.environ.get("AGENT_REGISTRY_BIND", "127.0.0.1:8081")]
workers = 1
worker_class = _real.worker_class
worker_connections = _real.worker_connections
max_requests = _real.max_requests
timeout = _real.timeout
graceful_timeout = _real.graceful_timeout
keepalive = _real.keepalive
preload_app = _real.preload_app
forwarded_allow_ips = _real.forwarded_allow_ips
accesslog = None
control_socket_disable = True
errorlog = "-"
loglevel = _real.loglevel

KEEPALIVE_SECONDS = 15.0
QUEUE_SIZE = 256
OPENING = b"retry: 5000\n: connected\n\n"
PING = b": ping\n\n"


def post_worker_init(worker: Any) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import gevent

    def watch() -> None:  # streams never end by themselves: end them when stopping
        while worker.alive:
            gevent.sleep(0.2)
        for queue in list(worker.wsgi.config["FLOOR_STREAMS"].values()):
            queue.put_nowait(None)

    gevent.spawn(watch)
    gc.freeze()


# --------------------------------------------------------------------------- the app


def create_app() -> Any:
    from flask import Flask, Response, request
    from gevent.queue import Empty, Full, Queue

    app = Flask(__name__)
    agents: dict[str, float] = {}
    streams: dict[str, Queue] = {}
    acks: dict[tuple[str, str], str] = {}
    app.config["FLOOR_STREAMS"] = streams

    @app.get("/healthz")
    def healthz() -> Any:  # what the load generator opens its ack connections with
        return {"status": "ok"}

    @app.post("/api/v1/agents/register")
    def register() -> Any:
        data = json.loads(request.get_data())
        agent_id = data["id"]
        created = agent_id not in agents
        agents[agent_id] = 0.0
        return {"agentId": agent_id}, 201 if created else 200

    @app.post("/api/v1/agents/<agent_id>/heartbeat")
    def heartbeat(agent_id: str) -> Any:
        agents[agent_id] = 1.0
        return "", 204

    @app.get("/api/v1/agents/<agent_id>/events")
    def events(agent_id: str) -> Any:
        def body() -> Any:
            queue: Queue = Queue(QUEUE_SIZE)
            previous = streams.get(agent_id)
            if previous is not None:
                previous.put_nowait(None)
            streams[agent_id] = queue
            try:
                yield OPENING
                while True:
                    try:
                        frame = queue.get(timeout=KEEPALIVE_SECONDS)
                    except Empty:
                        yield PING
                        continue
                    if frame is None:
                        return
                    yield frame
            finally:
                if streams.get(agent_id) is queue:
                    del streams[agent_id]

        return Response(
            body(),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.post("/api/v1/agents/commands")
    def broadcast() -> Any:
        data = json.loads(request.get_data())
        command_id = str(uuid.uuid4())
        event = {"commandId": command_id, "type": data["type"], "payload": data["payload"]}
        frame = (
            f"id: {command_id}\nevent: {data['type']}\n"
            f"data: {json.dumps(event, separators=(',', ':'))}\n\n"
        ).encode()
        for queue in list(streams.values()):
            with contextlib.suppress(Full):  # a stuck reader misses it, as in the real hub
                queue.put_nowait(frame)
        return {"commandId": command_id, "targets": len(streams)}, 202

    @app.post("/api/v1/agents/<agent_id>/commands/<command_id>/ack")
    def ack(agent_id: str, command_id: str) -> Any:
        body = request.get_data()
        status = json.loads(body).get("status", "SUCCESS") if body else "SUCCESS"
        acks[(command_id, agent_id)] = status
        return {"agentId": agent_id, "status": status}

    return app

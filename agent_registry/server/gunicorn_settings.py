"""gunicorn settings and server hooks, kept in the package so that the top-level
``gunicorn.conf.py`` and an installed ``agent-registry serve`` run the same server.

Why each setting is what it is: docs/deployment.md.
"""

from __future__ import annotations

import gc
import ipaddress
import logging
import os
import resource
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from agent_registry.config import ConfigError, Settings, load_settings
from agent_registry.config import log_format as parse_log_format
from agent_registry.security.setup import check_security


def _worker_count() -> int:
    raw = os.environ.get("WEB_CONCURRENCY", "1")
    if not raw.strip().isdigit() or int(raw) < 1:
        sys.exit(
            f"Error: invalid configuration: WEB_CONCURRENCY={raw!r} must be a whole "
            "number of at least 1"
        )
    return int(raw)


def _log_level() -> str:
    raw = os.environ.get("AGENT_REGISTRY_LOG_LEVEL", "info")
    if raw.lower() not in ("debug", "info", "warning", "error", "critical"):
        sys.exit(
            f"Error: invalid configuration: AGENT_REGISTRY_LOG_LEVEL={raw!r} must be "
            "debug, info, warning, error or critical"
        )
    return raw.lower()


def _log_format() -> str:
    raw = os.environ.get("AGENT_REGISTRY_LOG_FORMAT", "text")
    try:
        return parse_log_format(raw)
    except ValueError as exc:
        sys.exit(f"Error: invalid configuration: AGENT_REGISTRY_LOG_FORMAT={raw!r} {exc}")


wsgi_app = "agent_registry.server.wsgi:app"
bind = [os.environ.get("AGENT_REGISTRY_BIND", "0.0.0.0:8080")]
workers = _worker_count()
worker_class = "agent_registry.server.gunicorn_worker.Worker"
# A hard cap on open connections per worker, event streams included.
worker_connections = 20_000
# Every stream counts as a request: recycling workers would drop all of them.
max_requests = 0
# Streams never go idle from gunicorn's point of view; this only watches the worker loop.
timeout = 30
graceful_timeout = 10
# Idle keep-alive connections hold a stopping worker until they time out: keep it short.
keepalive = 2
# gevent must patch before the app is imported: no preload.
preload_app = False
# Proxies are trusted in one place only: AGENT_REGISTRY_TRUSTED_PROXIES (ProxyFix).
forwarded_allow_ips = ""
accesslog = None
# Several servers may share a host (tests, blue/green); none needs gunicorn's control socket.
control_socket_disable = True
errorlog = "-"
loglevel = _log_level()
# Every line, gunicorn's own included, in AGENT_REGISTRY_LOG_FORMAT (text or json), in the
# master and the workers: see agent_registry/server/logs.py. Checked here, before any line.
_log_format()
logger_class = "agent_registry.server.logs.GunicornLogger"

ONE_WORKER_ONLY = (
    "the memory store keeps state inside one worker process, so {n} workers would not share "
    "agents, streams or commands. Run one worker (WEB_CONCURRENCY=1), or set "
    "AGENT_REGISTRY_STORE=redis://host:port/db so that every worker shares one store."
)


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise RuntimeError(f"invalid configuration: {exc}") from None


def on_starting(server: Any) -> None:
    """Validate the configuration in the master, before any worker starts."""
    settings = _settings()
    try:
        check_security(settings)  # the key files, and the rules tying settings together
    except ConfigError as exc:
        raise RuntimeError(f"invalid configuration: {exc}") from None
    if not settings.auth and not all(_is_loopback(address) for address in server.cfg.bind):
        server.log.warning(
            "AGENT_REGISTRY_AUTH is off and the server listens on %s: anyone who can reach "
            "the port can register agents and command the fleet (docs/security.md)",
            ", ".join(server.cfg.bind),
        )
    # Python's warnings go through logging too, so that they are in the log's format.
    logging.captureWarnings(True)
    if settings.metrics:
        _prepare_metrics_directory(server.log)


# prometheus_client's multiprocess mode: every worker writes its values to files in one
# directory, and any worker's scrape sums them. The variable must be set before anything
# imports prometheus_client (it picks its value class on import), and the workers, forked
# from this master, inherit both the variable and whatever the master already imported.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_private_metrics_dir: str | None = None  # made here, so removed at exit


def _prepare_metrics_directory(log: logging.Logger) -> None:
    global _private_metrics_dir
    values = sys.modules.get("prometheus_client.values")
    if values is not None and not getattr(values.ValueClass, "_multiprocess", False):
        raise RuntimeError(
            f"refusing to start: prometheus_client was imported before {MULTIPROC_ENV} was "
            "set, so workers would not share their metrics; do not import it in the "
            "gunicorn configuration"
        )
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        # Values left by an earlier run would be summed into this one's.
        for stale in directory.glob("*.db"):
            stale.unlink()
    else:
        path = _private_metrics_dir = tempfile.mkdtemp(prefix="agent-registry-metrics-")
        os.environ[MULTIPROC_ENV] = path
    log.info("metrics: workers share %s=%s", MULTIPROC_ENV, path)


def _is_loopback(address: str) -> bool:
    """Whether a gunicorn bind address (host:port, [v6]:port, unix:path) is this host only.

    An inherited socket (``fd://``) may listen anywhere: it counts as reachable."""
    if address.startswith("unix:"):
        return True
    host = address.rsplit(":", 1)[0].strip("[]") if ":" in address else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def child_exit(server: Any, worker: Any) -> None:
    """In the master, when a worker exited: keep its counters, drop its live gauges."""
    if os.environ.get(MULTIPROC_ENV):
        # Importing it here is safe: the variable is set, and workers are already forked.
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    if _private_metrics_dir is not None:
        shutil.rmtree(_private_metrics_dir, ignore_errors=True)


def nworkers_changed(server: Any, new_value: int, old_value: int | None) -> None:
    """Refuse more than one worker on the memory store: at start, and on TTIN later."""
    if new_value <= 1 or not _settings().uses_memory_store:
        return
    message = ONE_WORKER_ONLY.format(n=new_value)
    if old_value is None:
        raise RuntimeError(f"refusing to start: {message}")
    server.log.error("refusing to add a worker: %s", message)
    server.num_workers = old_value


def post_worker_init(worker: Any) -> None:
    """In the worker, after gevent patched everything: start background work."""
    _raise_open_files_limit(worker.log)
    runtime = worker.wsgi.extensions["agent_registry"]
    runtime.start()
    _end_streams_on_shutdown(worker, runtime)
    # Long-lived stream objects would be rescanned by every GC pass; park what exists now.
    gc.freeze()


def worker_exit(server: Any, worker: Any) -> None:
    app = getattr(worker, "wsgi", None)
    if app is not None and hasattr(app, "extensions"):
        app.extensions["agent_registry"].exited()
    # Let frozen objects die before interpreter teardown, while gevent still works.
    gc.unfreeze()
    gc.collect()


def _end_streams_on_shutdown(worker: Any, runtime: Any) -> None:
    """gunicorn waits for open connections on SIGTERM; streams never end by themselves.

    gunicorn tells the app nothing, so watch ``worker.alive`` and end every stream the
    moment it turns false: agents reconnect elsewhere instead of waiting out
    ``graceful_timeout``.
    """
    import gevent

    def watch() -> None:
        while worker.alive:
            gevent.sleep(0.2)
        runtime.stop()

    gevent.spawn(watch)


def _raise_open_files_limit(log: logging.Logger) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < worker_connections:
        log.warning(
            "open-files limit %s is below worker_connections %s: at most about %s streams "
            "fit in this worker; raise `ulimit -n`",
            soft,
            worker_connections,
            soft - 100,
        )

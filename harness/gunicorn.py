"""The real server (or the benchmark's floor app) under gunicorn + gevent, on a socket we bound."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from signal import SIGTERM

from harness import procfs, server_log
from harness.process import ROOT, Process, ServerUnavailable
from harness.sockets import HOST, listening_socket

# Lifecycle thresholds in fractions of a second, for tests that watch agents go STALE/DEAD.
FAST_LIFECYCLE = {
    "AGENT_REGISTRY_HEARTBEAT_INTERVAL_SECONDS": "0.2",
    "AGENT_REGISTRY_STALE_AFTER_SECONDS": "0.6",
    "AGENT_REGISTRY_DEAD_AFTER_SECONDS": "0.6",
    "AGENT_REGISTRY_SWEEP_INTERVAL_SECONDS": "0.05",
}


def server_environment(
    bind: str, workers: int = 1, env: dict[str, str] | None = None
) -> dict[str, str]:
    """This process's environment without its ``AGENT_REGISTRY_*`` settings, plus ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_REGISTRY_")}
    return {
        **clean,
        "AGENT_REGISTRY_BIND": bind,
        "WEB_CONCURRENCY": str(workers),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }


def _answers_http(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as sock:
            sock.sendall(
                f"GET /api/v1/agents/-/missing HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            return sock.recv(12).startswith(b"HTTP/1.")
    except OSError:
        return False


class GunicornServer(Process):
    """``gunicorn -c CONFIG`` serving on a listening socket bound by this process, which
    keeps its copy until ``stop()`` so that the port stays ours across ``restart()``.

    ``kind`` is "real" (``gunicorn.conf.py``) or "floor" (``bench/floor_app.py``); ``env``
    is added to this process's environment minus its ``AGENT_REGISTRY_*`` variables.
    ``command`` replaces the gunicorn command line (e.g. ``[".../agent-registry", "serve"]``):
    it must serve on ``AGENT_REGISTRY_BIND``. ``backlog`` is the listen backlog of that
    socket (the kernel caps it at ``net.core.somaxconn``).
    """

    CONFIGS = {"real": "gunicorn.conf.py", "floor": "bench/floor_app.py"}

    def __init__(
        self,
        kind: str = "real",
        log_dir: Path | None = None,
        workers: int = 1,
        env: dict[str, str] | None = None,
        label: str | None = None,
        command: list[str] | None = None,
        cwd: Path = ROOT,
        backlog: int = 2048,
    ) -> None:
        super().__init__(label or f"{kind}-{workers}w", log_dir, cwd)
        self.kind = kind
        self.workers = workers
        self.extra_env = dict(env or {})
        self.command = command or [sys.executable, "-m", "gunicorn", "-c", self.CONFIGS[kind]]
        # gunicorn keeps the backlog of a socket that already listens (its own ``backlog``
        # setting applies only to the sockets it binds), so this is the server's.
        self._listener: socket.socket | None = listening_socket(backlog=backlog)
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://{HOST}:{self.port}"
        self.log_offset = 0

    def start(self, timeout: float = 30.0) -> GunicornServer:
        """Start, then wait until every worker process exists and the server answers HTTP."""
        if self._listener is None:
            raise RuntimeError(f"{self.name} was stopped; build a new one")
        fd = self._listener.fileno()
        env = server_environment(f"fd://{fd}", self.workers, self.extra_env)
        with self.log_path.open("ab") as log:
            self.log_offset = log.tell()
            log.write(f"\n===== start {self.name} port {self.port} {time.ctime()}\n".encode())
        self._spawn(self.command, env, (fd,))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.exited():
                code = self.stop()
                raise ServerUnavailable(
                    f"{self.name} exited at start (code {code}):\n{self.log_tail()}"
                )
            if len(self.worker_pids()) >= self.workers and _answers_http(self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise ServerUnavailable(
            f"{self.name} did not answer within {timeout} s:\n{self.log_tail()}"
        )

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.returncode

    def worker_pids(self) -> list[int]:
        return procfs.children(self.pid) if self.process is not None else []

    def owner_of(self, client_port: int) -> int | None:
        """The worker pid that holds the connection coming from ``client_port``."""
        return procfs.connection_owner(self.port, client_port, self.worker_pids())

    def log_since_start(self) -> str:
        with self.log_path.open("rb") as log:
            log.seek(self.log_offset)
            return log.read().decode(errors="replace")

    def log_summary(self, top: int = 6) -> dict[str, object]:
        """What this server (since its start) wrote to its log: volume, errors, warnings."""
        try:
            return server_log.summarise(self.log_since_start(), top)
        except OSError:
            return {}

    def restart(self, timeout: float = 30.0) -> GunicornServer:
        """Stop the server and start a new one on the same socket: while none runs,
        connections wait in the socket's backlog (they are not refused)."""
        super().stop()
        return self.start(timeout)

    def stop(self, sig: int = SIGTERM, timeout: float = 20.0) -> int | None:
        """Stop the server and close our copy of its socket: from now on, it refuses."""
        code = super().stop(sig, timeout)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        return code

    def __enter__(self) -> GunicornServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""A real server for end-to-end tests: gunicorn + gevent in a subprocess on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent

FAST_LIFECYCLE = {
    "AGENT_REGISTRY_HEARTBEAT_INTERVAL_SECONDS": "0.2",
    "AGENT_REGISTRY_STALE_AFTER_SECONDS": "0.6",
    "AGENT_REGISTRY_DEAD_AFTER_SECONDS": "0.6",
    "AGENT_REGISTRY_SWEEP_INTERVAL_SECONDS": "0.05",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``gunicorn -c gunicorn.conf.py`` with the given environment; stopped on ``stop()``."""

    def __init__(self, env: dict[str, str] | None = None, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AGENT_REGISTRY_")},
            "AGENT_REGISTRY_BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": str(workers),
            **(env or {}),
        }
        self.process: subprocess.Popen[str] | None = None
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"agent-registry-{self.port}.log"

    def start(self, timeout: float = 20.0) -> ServerProcess:
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited at start:\n{self.log()}")
            try:
                httpx.get(f"{self.url}/api/v1/agents?limit=1", timeout=1.0)
                return self
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not answer within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

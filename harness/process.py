"""A child process in its own session, logging to a file, stopped by its pid (never by name)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from signal import SIGKILL, SIGTERM

ROOT = Path(__file__).resolve().parent.parent


class ServerUnavailable(RuntimeError):
    """The server refused to start (its log says why)."""


class Process:
    """``log_dir`` defaults to a fresh temporary directory; one log file per name. The
    process runs in ``cwd`` (the repository root unless said otherwise)."""

    def __init__(self, name: str, log_dir: Path | None = None, cwd: Path = ROOT) -> None:
        self.name = name
        self.cwd = cwd
        directory = Path(log_dir or tempfile.mkdtemp(prefix="agent-registry-"))
        self.log_path = directory / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _spawn(
        self, argv: Sequence[str], env: dict[str, str], pass_fds: Sequence[int] = ()
    ) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=pass_fds,
            )

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def log(self) -> str:
        """The whole log, to show in a failure message (tests never decide by it)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, sig: int = SIGTERM, timeout: float = 20.0) -> int | None:
        """Signal the process, wait ``timeout``, then kill its whole session; the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, SIGKILL)  # the session we created
                self.process.wait()
        return self.process.returncode

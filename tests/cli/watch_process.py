"""``agent-registry watch`` run as a subprocess whose stdout is a pipe, read line by line."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from agent_registry.cli.main import main; main()"]


class Watch:
    def __init__(self, url: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [*CLI, "--url", url, "watch", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.notices: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            threading.Thread(
                target=self._read, args=(self.process.stdout, self._line), daemon=True
            ),
            threading.Thread(
                target=self._read, args=(self.process.stderr, self.notices.put), daemon=True
            ),
        ]
        for reader in self._readers:
            reader.start()
        self.seen: list[dict[str, Any]] = []

    def _line(self, line: str) -> None:
        self.lines.put(json.loads(line))  # every stdout line must be one JSON object

    @staticmethod
    def _read(stream: IO[str], handle: Callable[[str], None]) -> None:
        for line in stream:
            handle(line.rstrip("\n"))

    def until(
        self, check: Callable[[dict[str, Any]], bool], within: float = 10.0
    ) -> dict[str, Any]:
        """Read JSON lines until one passes ``check``."""
        while True:
            try:
                line = self.lines.get(timeout=within)
            except queue.Empty:
                raise AssertionError(f"no such line within {within} s; read {self.seen}") from None
            self.seen.append(line)
            if check(line):
                return line

    def notice(self, check: Callable[[str], bool], within: float = 15.0) -> str:
        while True:
            try:
                line = self.notices.get(timeout=within)
            except queue.Empty:
                raise AssertionError(f"no such notice on stderr within {within} s") from None
            if check(line):
                return line

    def stop(self) -> int:
        self.process.terminate()
        code = self.process.wait(10)
        for reader in self._readers:
            reader.join(5)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()
        return code

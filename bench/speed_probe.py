"""How fast the machine's cores run a fixed piece of work, sampled beside a measurement.

On a shared VM the CPU time one operation costs can change by up to 2x within seconds (a
busy neighbour on the host's other hyperthread, say); measured here, the same pure-Python
work took 12.8-31.8 ms of CPU, mostly 13-15 or 24-31. A memory run and a Redis run a
minute apart can then meet different speeds, and their CPU per operation compares the
host, not the code.

``python -m bench.speed_probe FILE PID`` runs that work every ``INTERVAL`` seconds on each
core it may use (the load generator's), in turn, and appends one line per sample to FILE:
the monotonic time (shared by all processes of the machine) and the CPU milliseconds the
work took. It stops when its parent, process PID, is gone (even before it started).
``SpeedProbe`` starts it; ``probe_ms`` summarises the samples of a window. A sample took
1.4-2.8 ms of CPU, as fast or slow as the host was: 1.5-3 % of one core.

The probe does not correct a figure: the server's code slowed less than the probe did in
the runs measured (docs/performance.md, "Send when idle"). It tells which runs met the
same speed on both sides (``bench.compare``).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

INTERVAL = 0.1
_UNIT = 20_000
_ROOT = Path(__file__).resolve().parents[1]  # where ``-m bench.speed_probe`` imports from


def work() -> None:
    """The fixed work: a small dict (fits any cache) and string formatting."""
    table: dict[int, str] = {}
    for i in range(_UNIT):
        table[i & 1023] = str(i)


def sample_forever(path: Path, parent: int) -> None:
    cores = sorted(os.sched_getaffinity(0))
    with path.open("a") as out:
        while os.getppid() == parent:  # once it is gone, this process's parent changes
            for core in cores:
                os.sched_setaffinity(0, {core})
                started = time.thread_time()
                work()
                took = time.thread_time() - started
                out.write(f"{time.monotonic():.4f} {1000 * took:.3f}\n")
                out.flush()
                time.sleep(INTERVAL)


def probe_ms(path: Path, start: float, end: float) -> dict[str, float | int] | None:
    """The mean CPU ms of the samples taken between two monotonic times (the mean, since
    CPU time adds up over a window), and how many there were."""
    samples = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) != 2:  # a line being written (each is one write, so whole or not)
            continue
        at, took = fields
        if start <= float(at) <= end:
            samples.append(float(took))
    if not samples:
        return None
    return {"mean_ms": round(statistics.fmean(samples), 3), "samples": len(samples)}


class SpeedProbe:
    """The probe process, for the length of a ``with`` block."""

    def __init__(self) -> None:
        self.path = Path()
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SpeedProbe:
        handle, name = tempfile.mkstemp(prefix="speed-probe-", suffix=".txt")
        os.close(handle)
        self.path = Path(name)
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "bench.speed_probe", name, str(os.getpid())],
                cwd=_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        except BaseException:
            self.path.unlink()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        self.path.unlink(missing_ok=True)

    def window(self, start: float, end: float) -> dict[str, float | int] | None:
        """The samples between two monotonic times (``probe_ms``)."""
        return probe_ms(self.path, start, end)


if __name__ == "__main__":
    sample_forever(Path(sys.argv[1]), int(sys.argv[2]))

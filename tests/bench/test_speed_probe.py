"""bench.speed_probe: a fixed work's CPU time sampled on each core beside a measurement."""

from __future__ import annotations

import time
from pathlib import Path

from bench.metering import Meter
from bench.speed_probe import SpeedProbe, probe_ms


def test_a_window_takes_the_mean_of_its_own_samples(tmp_path: Path) -> None:
    samples = tmp_path / "samples.txt"
    samples.write_text("10.0 9.0\n11.0 1.0\n12.0 3.0\n13.0 2.0\n20.0 7.0\n")

    assert probe_ms(samples, 11.0, 13.0) == {"mean_ms": 2.0, "samples": 3}
    assert probe_ms(samples, 14.0, 19.0) is None


def test_the_probe_samples_while_it_runs_and_leaves_nothing_behind() -> None:
    with SpeedProbe() as probe:
        meter = Meter([], {}, probe=probe)
        start = meter.snapshot()
        deadline = time.monotonic() + 30
        while probe.window(start["t"], time.monotonic()) is None:  # the first sample
            assert time.monotonic() < deadline, "the probe took no sample in 30 s"
            time.sleep(0.05)
        figures = meter.delta(start, meter.snapshot())
        path = probe.path

    assert figures["probe"]["samples"] >= 1
    assert 0 < figures["probe"]["mean_ms"] < 1000
    assert not path.exists()


def test_a_meter_without_a_probe_reports_none() -> None:
    meter = Meter([], {})
    assert "probe" not in meter.delta(meter.snapshot(), meter.snapshot())

"""Metric updates kept in plain Python per process, moved into prometheus values in bulk.

Under gunicorn every prometheus value lives in a memory-mapped file that the host's workers
share, and each update takes a lock and writes the file: a few microseconds, and a request
makes several (a counter, a histogram's sum and one of its buckets). Here a request only
adds to a dict; ``flush`` makes one update per value touched since the last flush. The
``Metrics`` flush at every scrape this worker answers, once a second from a greenlet, and
when the worker stops, so another worker's answer to a scrape lags by at most a second.

This reads three attributes of prometheus_client's histograms (``_upper_bounds``, ``_sum``,
``_buckets``: bucket counts are kept per bucket and added up at collection);
``check_histogram`` refuses to start if they ever change.
"""

from __future__ import annotations

from bisect import bisect_left

from prometheus_client import Counter, Histogram


def check_histogram(histogram: Histogram) -> None:
    for name in ("_upper_bounds", "_sum", "_buckets"):
        if not hasattr(histogram, name):
            raise RuntimeError(
                f"prometheus_client's Histogram has no {name}: metric tallies need updating"
            )


class Tallies:
    def __init__(self) -> None:
        self._counts: dict[Counter, float] = {}
        # Per histogram: [sum, then one count per bucket].
        self._observations: dict[Histogram, list[float]] = {}

    def count(self, counter: Counter, amount: float = 1) -> None:
        self._counts[counter] = self._counts.get(counter, 0) + amount

    def observe(self, histogram: Histogram, value: float, times: int = 1) -> None:
        """``times`` observations of ``value`` (a broadcast's DELIVERED records are many)."""
        bounds: list[float] = histogram._upper_bounds
        tally = self._observations.get(histogram)
        if tally is None:
            tally = self._observations[histogram] = [0.0] * (1 + len(bounds))
        tally[0] += value * times
        tally[1 + bisect_left(bounds, value)] += times  # the first bucket with value <= bound

    def flush(self) -> None:
        counts, self._counts = self._counts, {}
        observations, self._observations = self._observations, {}
        for counter, amount in counts.items():
            counter.inc(amount)
        for histogram, tally in observations.items():
            histogram._sum.inc(tally[0])
            for bucket, times in zip(histogram._buckets, tally[1:], strict=True):
                if times:
                    bucket.inc(times)

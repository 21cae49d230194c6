"""Prometheus metrics: a fleet observer for the core, a request hook, the sweep timer, and
the text exposition that ``GET /metrics`` answers.

One ``Metrics`` per app (on the ``Runtime``), with its own ``CollectorRegistry``, so two
apps in one process (tests) never share counts. Under gunicorn, the master sets
``PROMETHEUS_MULTIPROC_DIR`` before any worker imports ``prometheus_client``
(``gunicorn_settings.py``): every worker then writes its values to files there, and any
worker's scrape reads all of them through ``MultiProcessCollector`` (counters and
histograms summed; the open-streams gauge summed over live workers).

Label values are bounded: routes are the URL map's templates (``/api/v1/agents/<agent_id>``,
or ``unmatched``), methods the HTTP ones (anything else is ``other``), statuses HTTP
statuses, and the rest the core's enums. No agent or command id is ever a label.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from time import perf_counter

import gevent
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from ..core.models import Agent, AgentState, Command, Delivery, DeliveryStatus, Transition
from ..errors import StoreUnavailable
from ..web.errors import REFUSAL_KEY
from ..web.pipeline import Call, Headers
from .tallies import Tallies, check_histogram

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "unmatched"  # the route label of a URL that no route matches
_REFUSED = frozenset({401, 403})
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Seconds from a request's first look to its answer's headers: heartbeats take ~0.3 ms.
HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# How often a worker moves its tallies into the shared values (scrapes also do).
FLUSH_SECONDS = 1.0
# Seconds from createdAt to DELIVERED / to the ack: milliseconds when streams are open, up to
# the expiry (60 s by default) for an agent that was reconnecting or is slow to act.
COMMAND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60)
# A sweep with nothing due costs microseconds; a big one (10 000 agents going STALE) seconds.
SWEEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

_FINAL = (
    DeliveryStatus.ACKNOWLEDGED,
    DeliveryStatus.FAILED,
    DeliveryStatus.EXPIRED,
    DeliveryStatus.CANCELLED,
)
_ACKED = frozenset({DeliveryStatus.ACKNOWLEDGED, DeliveryStatus.FAILED})


def multiprocess_dir() -> str | None:
    """The directory shared by this host's workers, or None (one process: tests)."""
    return os.environ.get(MULTIPROC_ENV) or None


class Metrics:
    """Every metric of one app, and what feeds them."""

    def __init__(self, multiproc_dir: str | None = None) -> None:
        self.multiproc_dir = multiproc_dir
        if multiproc_dir is not None and not getattr(values.ValueClass, "_multiprocess", False):
            raise RuntimeError(
                f"{MULTIPROC_ENV} is set but prometheus_client was imported before it was: "
                "workers would not share their counts. Set it before the app is imported."
            )
        self.registry = registry = CollectorRegistry()
        self.streams_open = Gauge(
            "agent_registry_streams_open",
            "Event streams open on this host",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.operator_streams_open = Gauge(
            "agent_registry_operator_streams_open",
            "Operator event streams (GET /api/v1/events) open on this host",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.transitions = Counter(
            "agent_registry_transitions_total",
            "Lifecycle transitions applied by the sweep, by new state",
            ["to"],
            registry=registry,
        )
        self.commands = Counter(
            "agent_registry_commands_total",
            "Commands sent, by type and target kind (agent, group, all)",
            ["type", "target"],
            registry=registry,
        )
        self.deliveries = Counter(
            "agent_registry_deliveries_total",
            "Deliveries that reached a final status (ACKNOWLEDGED, FAILED, EXPIRED, CANCELLED)",
            ["status"],
            registry=registry,
        )
        self.delivery_seconds = Histogram(
            "agent_registry_delivery_seconds",
            "Seconds from a command's createdAt to its delivery being DELIVERED",
            buckets=COMMAND_BUCKETS,
            registry=registry,
        )
        self.ack_seconds = Histogram(
            "agent_registry_ack_seconds",
            "Seconds from a command's createdAt to the agent's ack (success or failure)",
            buckets=COMMAND_BUCKETS,
            registry=registry,
        )
        self.http_requests = Counter(
            "agent_registry_http_requests_total",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "agent_registry_http_request_duration_seconds",
            "Seconds from a request's arrival to its answer's headers, by route template",
            ["route"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.sweep_duration = Histogram(
            "agent_registry_sweep_duration_seconds",
            "Seconds one sweep run took (lifecycle; expiry and purge of commands)",
            buckets=SWEEP_BUCKETS,
            registry=registry,
        )
        # Counted by the HTTP hook from the refusal's reason (web/errors.py, REFUSAL_KEY).
        self.auth_failures = Counter(
            "agent_registry_auth_failures_total",
            "Requests refused for a bad or missing token, by reason",
            ["reason"],
            registry=registry,
        )
        # Counted by the runtime's StoreOutage, in the process where the failure happened.
        self.store_errors = Counter(
            "agent_registry_store_errors_total",
            "Operations that could not reach the shared store (Redis)",
            registry=registry,
        )
        # Counted by the worker whose lifecycle sweep found the gap (core/grace.py), once.
        self.outages = Counter(
            "agent_registry_outages_total",
            "Gaps longer than 2 x SWEEP_INTERVAL_SECONDS between two lifecycle sweeps (the "
            "store could not be reached, or the server was paused): outage grace began",
            registry=registry,
        )
        self.outage_seconds = Counter(
            "agent_registry_outage_seconds_total",
            "Seconds of those gaps, added up (the grace the agents were given)",
            registry=registry,
        )
        # Told by the worker's bus (redis/bus.py, BusMonitor); the memory store's is always 1.
        self.bus_subscribed = Gauge(
            "agent_registry_bus_subscribed",
            "1 while this worker's bus subscriber is subscribed to Redis, so that commands sent "
            "through other workers reach its streams (always 1 on the memory store); the "
            "lowest value over the host's workers",
            multiprocess_mode="livemin",
            registry=registry,
        )
        self.bus_restarts = Counter(
            "agent_registry_bus_restarts_total",
            "Restarts of a worker's bus subscriber after it failed (not its reconnects after "
            "a store outage)",
            registry=registry,
        )
        self.bus_skipped = Counter(
            "agent_registry_bus_skipped_total",
            "Bus messages and caught-up commands skipped because handling them failed",
            registry=registry,
        )
        self.bus = BusMetrics(self)
        # Read from the store at scrape time; the runtime sets the callables.
        self.fleet = FleetCollector()
        for histogram in (self.delivery_seconds, self.ack_seconds, self.sweep_duration):
            check_histogram(histogram)
        self.tallies = Tallies()
        self.observer = MetricsObserver(self)
        self.http = HttpMetrics(self)
        self._flusher: gevent.Greenlet[[], None] | None = None

    def observe_sweep(self, seconds: float) -> None:
        self.tallies.observe(self.sweep_duration, seconds)

    def observe_outage(self, seconds: float) -> None:
        self.outages.inc()
        self.outage_seconds.inc(seconds)

    def start(self) -> None:
        """Flush the tallies once a second (a worker's background work)."""
        if self._flusher is None:
            self._flusher = gevent.spawn(self._flush_forever)

    def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.kill()
            self._flusher = None
        self.tallies.flush()  # what this worker counted last stays in the host's sums

    def _flush_forever(self) -> None:
        while True:
            gevent.sleep(FLUSH_SECONDS)
            self.tallies.flush()

    def exposition(self) -> tuple[bytes, str]:
        """(body, content type) of ``GET /metrics``: this host's workers, or this app."""
        self.tallies.flush()
        scrape = CollectorRegistry()
        if self.multiproc_dir is None:
            scrape.register(self.registry)
        else:
            scrape.register(_HostCollector(self.multiproc_dir, self.registry))
        scrape.register(self.fleet)
        return generate_latest(scrape), CONTENT_TYPE_LATEST


class FleetCollector(Collector):
    """Fleet-wide gauges read from the shared store at scrape time (not summed per worker).

    Nothing is exported until the callables are set; a store that fails while it is read
    drops these gauges from that scrape instead of failing the whole scrape.
    """

    def __init__(
        self,
        counts: Callable[[], Mapping[AgentState, int]] | None = None,
        connected: Callable[[], int] | None = None,
    ) -> None:
        self.counts = counts
        self.connected = connected

    def collect(self) -> Iterable[Metric]:
        try:
            if self.counts is not None:
                by_state = self.counts()
                agents = GaugeMetricFamily(
                    "agent_registry_agents", "Agents in the store, by state", labels=["state"]
                )
                for state in AgentState:
                    agents.add_metric([state.value], by_state.get(state, 0))
                yield agents
            if self.connected is not None:
                yield GaugeMetricFamily(
                    "agent_registry_agents_connected",
                    "Agents with an event stream open to any server process",
                    value=self.connected(),
                )
        except StoreUnavailable:
            # Counted and logged once per outage by the runtime's StoreOutage.
            log.debug("fleet gauges left out of this scrape: the store is unavailable")
        except Exception:
            log.exception("fleet gauges left out of this scrape: the store could not be read")


class _HostCollector(Collector):
    """Every worker's values (``MultiProcessCollector``), plus the declared families that
    no worker has a sample of yet, so a scrape always lists every metric."""

    def __init__(self, path: str, declared: CollectorRegistry) -> None:
        self._files = MultiProcessCollector(None, path)  # type: ignore[no-untyped-call]
        self._declared = declared

    def collect(self) -> Iterable[Metric]:
        seen: set[str] = set()
        for family in self._files.collect():  # type: ignore[no-untyped-call]
            seen.add(family.name)
            yield family
        for family in self._declared.collect():
            if family.name not in seen:
                family.samples = []
                yield family


class BusMetrics:
    """The bus's ``BusMonitor``: rare events, so written straight to the shared values."""

    def __init__(self, metrics: Metrics) -> None:
        self._subscribed = metrics.bus_subscribed
        self._restarts = metrics.bus_restarts
        self._skipped = metrics.bus_skipped

    def subscribed(self, now: bool) -> None:
        self._subscribed.set(1 if now else 0)

    def restarted(self) -> None:
        self._restarts.inc()

    def skipped(self) -> None:
        self._skipped.inc()


class MetricsObserver:
    """The core's ``FleetObserver``: each event it is told of happened once, fleet-wide."""

    def __init__(self, metrics: Metrics) -> None:
        self._tallies = metrics.tallies
        self._transitions = {
            state: metrics.transitions.labels(state.value)
            for state in (AgentState.STALE, AgentState.DEAD)
        }
        self._transitions_by_state = metrics.transitions
        self._commands = metrics.commands
        self._finished = {status: metrics.deliveries.labels(status.value) for status in _FINAL}
        self._delivery_seconds = metrics.delivery_seconds
        self._ack_seconds = metrics.ack_seconds

    def registered(self, agent: Agent, created: bool) -> None:
        pass

    def transitioned(self, transition: Transition) -> None:
        counter = self._transitions.get(transition.to_state)
        if counter is None:  # a future caller reporting a return to LIVE
            counter = self._transitions[transition.to_state] = self._transitions_by_state.labels(
                transition.to_state.value
            )
        self._tallies.count(counter)

    def revived(self, agent_id: str, at: float) -> None:
        pass  # agent_registry_transitions_total counts the sweep's transitions only

    def command_sent(self, command: Command, agent_ids: Sequence[str]) -> None:
        self._tallies.count(self._commands.labels(command.type.value, command.target.kind.value))

    def delivered(self, command_id: str, created_at: float, count: int, at: float) -> None:
        self._tallies.observe(self._delivery_seconds, max(0.0, at - created_at), count)

    def finished(self, command: Command, delivery: Delivery) -> None:
        counter = self._finished.get(delivery.status)
        if counter is None:
            return
        self._tallies.count(counter)
        if delivery.status in _ACKED and delivery.acknowledged_at is not None:
            seconds = max(0.0, delivery.acknowledged_at - command.created_at)
            self._tallies.observe(self._ack_seconds, seconds)

    def deleted(self, agent: Agent) -> None:
        pass  # agent_registry_agents{state} is read from the store's counts


class HttpMetrics:
    """The pipeline hook behind the two HTTP metrics: timed from ``before`` to ``after``."""

    def __init__(self, metrics: Metrics) -> None:
        self._tallies = metrics.tallies
        self._requests = metrics.http_requests
        self._duration = metrics.http_duration
        self._auth_failures = metrics.auth_failures
        # Children by label values: a few dozen at most, since every label is bounded.
        self._counters: dict[tuple[str, str, int], Counter] = {}
        self._histograms: dict[str, Histogram] = {}

    def before(self, call: Call) -> None:
        pass

    def after(self, call: Call, status: int, headers: Headers) -> None:
        elapsed = perf_counter() - call.started
        route = call.route or UNMATCHED
        method = call.method if call.method in _METHODS else "other"
        key = (route, method, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self._requests.labels(route, method, str(status))
        self._tallies.count(counter)
        histogram = self._histograms.get(route)
        if histogram is None:
            histogram = self._histograms[route] = self._duration.labels(route)
        self._tallies.observe(histogram, elapsed)
        if status in _REFUSED:
            reason = call.environ.get(REFUSAL_KEY)
            if reason is not None:
                self._tallies.count(self._auth_failures.labels(reason))

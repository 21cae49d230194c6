"""GET /metrics in one process: exact counts per label set after known actions, bounded
label sets, and nothing at all with AGENT_REGISTRY_METRICS=off."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from agent_registry.server.runtime import Runtime
from agent_registry.streams.writer import event_stream
from harness.api_actions import Api
from harness.clock import FakeClock

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

AGENT = "/api/v1/agents/<agent_id>"
REGISTER = "/api/v1/agents/register"
HEARTBEAT = "/api/v1/agents/<agent_id>/heartbeat"
GROUP_SEND = "/api/v1/agents/groups/<group>/commands"
ACK = "/api/v1/agents/<agent_id>/commands/<command_id>/ack"


def scrape(client: FlaskClient) -> Samples:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.mimetype == "text/plain"
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def labelled(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: value for (sample, labels), value in samples.items() if sample == name}


def requests(samples: Samples) -> dict[tuple[str, str, str], float]:
    return {
        (dict(labels)["route"], dict(labels)["method"], dict(labels)["status"]): value
        for labels, value in labelled(samples, "agent_registry_http_requests_total").items()
    }


def test_known_actions_give_exact_counts_per_label_set(
    api: Api, client: FlaskClient, runtime: Runtime, clock: FakeClock
) -> None:
    for agent_id in ("m-1", "m-2", "m-3"):
        assert api.register(agent_id, "g-metrics").status_code == 201
    for agent_id in ("m-1", "m-1", "m-2"):
        assert api.heartbeat(agent_id).status_code == 204
    sent = api.send("groups/g-metrics/commands")
    assert sent.status_code == 202
    command_id = sent.get_json()["commandId"]
    clock.advance(0.5)
    runtime.commands.mark_delivered_to(command_id, ["m-1", "m-2"])  # what streams report
    runtime.commands.mark_delivered_to(command_id, ["m-1"])  # already DELIVERED: not again
    clock.advance(0.5)
    assert api.ack("m-1", command_id).status_code == 200
    assert api.ack("m-2", command_id, status="FAILURE").status_code == 200
    assert api.ack("m-2", command_id, status="FAILURE").status_code == 200  # a repeat
    clock.advance(60)  # m-3 never acknowledged: expires
    runtime.sweeper.sweep_commands()
    runtime.sweeper.sweep_commands()  # nothing left to expire: counted once
    clock.advance(30)  # 91 s after the last heartbeats: all three go STALE
    runtime.sweeper.sweep_lifecycle()
    assert client.get("/api/v1/agents/nobody").status_code == 404
    assert client.get("/no/such/page").status_code == 404

    samples = scrape(client)

    assert requests(samples) == {
        (REGISTER, "POST", "201"): 3,
        (HEARTBEAT, "POST", "204"): 3,
        (GROUP_SEND, "POST", "202"): 1,
        (ACK, "POST", "200"): 3,
        (AGENT, "GET", "404"): 1,
        ("unmatched", "GET", "404"): 1,
    }
    durations = labelled(samples, "agent_registry_http_request_duration_seconds_count")
    assert {dict(labels)["route"]: value for labels, value in durations.items()} == {
        REGISTER: 3,
        HEARTBEAT: 3,
        GROUP_SEND: 1,
        ACK: 3,
        AGENT: 1,
        "unmatched": 1,
    }
    assert labelled(samples, "agent_registry_commands_total") == {
        (("target", "group"), ("type", "deep-trace")): 1
    }
    assert labelled(samples, "agent_registry_deliveries_total") == {
        (("status", "ACKNOWLEDGED"),): 1,
        (("status", "FAILED"),): 1,
        (("status", "EXPIRED"),): 1,
        (("status", "CANCELLED"),): 0,
    }
    assert samples[("agent_registry_delivery_seconds_count", ())] == 2
    assert samples[("agent_registry_delivery_seconds_sum", ())] == pytest.approx(1.0)
    assert samples[("agent_registry_delivery_seconds_bucket", (("le", "0.25"),))] == 0
    assert samples[("agent_registry_delivery_seconds_bucket", (("le", "0.5"),))] == 2
    assert samples[("agent_registry_ack_seconds_count", ())] == 2
    assert samples[("agent_registry_ack_seconds_sum", ())] == pytest.approx(2.0)
    assert labelled(samples, "agent_registry_transitions_total") == {
        (("to", "STALE"),): 3,
        (("to", "DEAD"),): 0,
    }
    assert samples[("agent_registry_sweep_duration_seconds_count", ())] == 3
    assert samples[("agent_registry_streams_open", ())] == 0
    # Declared for the auth layer to come: exported, with no label set yet.
    assert labelled(samples, "agent_registry_auth_failures_total") == {}
    assert "# TYPE agent_registry_auth_failures_total counter" in client.get("/metrics").text


def test_dead_transitions_are_counted_once_whatever_the_number_of_sweeps(
    api: Api, client: FlaskClient, runtime: Runtime, clock: FakeClock
) -> None:
    api.register("m-1")
    clock.advance(90 + 300)
    runtime.registry.sweep()
    runtime.registry.sweep()

    transitions = labelled(scrape(client), "agent_registry_transitions_total")

    assert transitions == {(("to", "STALE"),): 1, (("to", "DEAD"),): 1}


def test_the_open_streams_gauge_follows_streams_opening_and_closing(
    api: Api, client: FlaskClient, runtime: Runtime
) -> None:
    api.register("m-1")
    api.register("m-2")
    streams = [
        event_stream(runtime.hub, agent_id, None, 15, runtime.delivery_recorder)
        for agent_id in ("m-1", "m-2", "m-2")  # the third replaces the second
    ]
    for stream in streams:
        next(stream)  # opened: the opening bytes are out
    assert scrape(client)[("agent_registry_streams_open", ())] == 3  # the replaced one drains

    streams[1].close()
    assert scrape(client)[("agent_registry_streams_open", ())] == 2
    for stream in (streams[0], streams[2]):
        stream.close()
    assert scrape(client)[("agent_registry_streams_open", ())] == 0


@pytest.mark.parametrize("store_url", ["memory"])
def test_a_thousand_agents_add_no_label_values(api: Api, client: FlaskClient) -> None:
    api.register("first")
    api.heartbeat("first")
    api.heartbeat("unknown")  # a 404 label set, so that every status below exists already
    scrape(client)  # and the scrape's own
    before = scrape(client)

    for n in range(1000):
        assert api.register(f"agent-{n:04d}").status_code == 201
        assert api.heartbeat(f"agent-{n:04d}").status_code == 204
        assert api.heartbeat(f"gone-{n:04d}").status_code == 404
    after = scrape(client)

    assert set(after) == set(before)
    assert requests(after)[(REGISTER, "POST", "201")] == 1001
    assert requests(after)[(HEARTBEAT, "POST", "404")] == 1001


def test_an_unknown_method_is_one_label_value(client: FlaskClient) -> None:
    for method in ("BREW", "WHEN", "PROPFIND"):
        client.open("/api/v1/agents", method=method)

    # No route takes these methods (405), so the route is unmatched as well.
    assert requests(scrape(client)) == {("unmatched", "other", "405"): 3}


def test_two_apps_in_one_process_do_not_share_counts(make_app) -> None:
    first, second = make_app(), make_app()
    Api(first.test_client()).register("m-1")

    assert requests(scrape(first.test_client())) == {(REGISTER, "POST", "201"): 1}
    assert requests(scrape(second.test_client())) == {}


def test_with_metrics_off_there_is_no_hook_no_observer_and_metrics_answers_404(
    make_app,
) -> None:
    app = make_app(metrics="off")
    runtime: Runtime = app.extensions["agent_registry"]
    client = app.test_client()
    Api(client).register("m-1")

    answer = client.get("/metrics")

    assert answer.status_code == 404
    assert answer.get_json()["code"] == "NOT_FOUND"
    assert "AGENT_REGISTRY_METRICS=off" in answer.get_json()["message"]
    assert runtime.metrics is None
    assert runtime.hub.gauge is None
    assert app.extensions["agent_registry.pipeline"].hooks == []


def test_tallied_updates_equal_direct_ones_once_flushed() -> None:
    """Counters and histograms fed through Tallies read exactly as if updated one by one."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from agent_registry.server.tallies import Tallies

    def pair(kind, *args, **kwargs):  # one metric fed through the tallies, one directly
        return kind(*args, registry=CollectorRegistry(), **kwargs), kind(
            *args, registry=CollectorRegistry(), **kwargs
        )

    tallies = Tallies()
    tallied_h, direct_h = pair(Histogram, "x_seconds", "x", buckets=(0.1, 1, 10))
    tallied_c, direct_c = pair(Counter, "y_total", "y")
    for seconds, count in ((0.05, 3), (0.5, 2), (100, 4), (1, 1), (0.1, 2), (0.2, 0)):
        tallies.observe(tallied_h, seconds, count)
        tallies.count(tallied_c, count)
        for _ in range(count):
            direct_h.observe(seconds)
            direct_c.inc()
    assert values(tallied_c) != values(direct_c)  # nothing reaches the values before a flush

    tallies.flush()

    for tallied, direct in ((tallied_h, direct_h), (tallied_c, direct_c)):
        got, expected = values(tallied), values(direct)
        assert [sample[:2] for sample in got] == [sample[:2] for sample in expected]
        assert [sample[2] for sample in got] == pytest.approx([sample[2] for sample in expected])


def values(metric: object) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for family in metric.collect()  # type: ignore[attr-defined]
        for s in family.samples
        if not s.name.endswith("_created")
    ]


def test_the_fleet_gauges_come_from_the_store_counts(
    api: Api, client: FlaskClient, runtime: Runtime, clock: FakeClock
) -> None:
    for agent_id in ("f-1", "f-2", "f-3"):
        api.register(agent_id, "g-fleet")
    clock.advance(runtime.settings.stale_after_seconds + 1)
    api.heartbeat("f-1")
    runtime.registry.sweep()
    stream = event_stream(runtime.hub, "f-1", None, 15.0, runtime.delivery_recorder)
    next(stream)  # the opening bytes: the stream is registered

    samples = scrape(client)

    assert labelled(samples, "agent_registry_agents") == {
        (("state", "LIVE"),): 1.0,
        (("state", "STALE"),): 2.0,
        (("state", "DEAD"),): 0.0,
    }
    assert samples[("agent_registry_agents_connected", ())] == 1.0
    stream.close()


def test_store_errors_count_every_operation_that_missed_the_store(
    client: FlaskClient, runtime: Runtime
) -> None:
    runtime.outage.failed("a sweep", "connection refused")
    runtime.outage.failed("a heartbeat", "connection refused")
    runtime.outage.succeeded()

    assert scrape(client)[("agent_registry_store_errors_total", ())] == 2.0


def test_what_is_counted_while_the_worker_drains_is_written_out_when_it_exits(
    api: Api, runtime: Runtime
) -> None:
    """Regression: stop() (at SIGTERM) ended the flushes, and the requests answered during
    the graceful timeout never reached the shared values."""
    assert runtime.metrics is not None
    api.register("drain-1", "g-drain")
    runtime.stop()
    assert api.heartbeat("drain-1").status_code == 204  # answered while draining

    runtime.exited()

    answered = runtime.metrics.registry.get_sample_value(
        "agent_registry_http_requests_total",
        {"route": HEARTBEAT, "method": "POST", "status": "204"},
    )
    assert answered == 1.0


def test_bus_metrics_are_exported_on_both_stores(client: FlaskClient, store_url: str) -> None:
    samples = scrape(client)
    # The memory store's bus is this process; a Redis subscriber not started is not
    # subscribed (the test app runs no background work).
    subscribed = 1 if store_url == "memory" else 0
    assert samples[("agent_registry_bus_subscribed", ())] == subscribed
    assert samples[("agent_registry_bus_restarts_total", ())] == 0
    assert samples[("agent_registry_bus_skipped_total", ())] == 0


@pytest.mark.redis
@pytest.mark.parametrize("store_url", ["redis"], indirect=True)
def test_a_bus_message_whose_handling_fails_is_counted_as_skipped(
    client: FlaskClient, runtime: Runtime
) -> None:
    """Issue 15, row 3: what the subscriber skips is counted, not only logged."""
    stream = runtime.hub.open("a")
    try:
        runtime.relay.handle('{"origin": "another-worker", "end": "a"}')  # type: ignore[attr-defined]
    finally:
        runtime.hub.close(stream)
    assert scrape(client)[("agent_registry_bus_skipped_total", ())] == 1

"""§ Operator event stream of API.md: ``GET /api/v1/events``, on both stores.

The stream is read through the test client (``operator_stream.OperatorStream``), with a
short keepalive so that every read returns soon. What crosses processes is tested in
tests/redis and tests/e2e.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from agent_registry.security.signing import generate_pem
from agent_registry.security.tokens import Role
from harness.api_actions import Api
from harness.clock import FakeClock
from tests.api import ISO_MS, assert_error
from tests.api.operator_stream import Event, OperatorStream, of, settle
from tests.api.test_auth_api import SECRET, Fleet
from tests.api.test_metrics_api import scrape

STALE, DEAD = 90.0, 300.0
KEEPALIVE = 0.3


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(keepalive_seconds=KEEPALIVE)


@pytest.fixture
def operator_streams(client: FlaskClient, runtime: Any) -> Iterator[Callable[..., OperatorStream]]:
    opened: list[OperatorStream] = []

    def open_stream(query: str = "", headers: Any = None) -> OperatorStream:
        stream = OperatorStream(client, query, headers)
        opened.append(stream)
        return stream

    yield open_stream
    for stream in opened:
        stream.close()
    assert settle(runtime.operator_events.idle)


def fleet(live: int = 0, stale: int = 0, dead: int = 0, connected: int = 0) -> dict[str, int]:
    return {"LIVE": live, "STALE": stale, "DEAD": dead, "connected": connected}


def counts(found: Event) -> dict[str, Any]:
    assert found.event == "fleet"
    assert ISO_MS.match(found.data["at"])
    return {key: value for key, value in found.data.items() if key != "at"}


def last_fleet(events: list[Event]) -> dict[str, Any]:
    return counts([e for e in events if e.event == "fleet"][-1])


def send(api: Api, path: str) -> dict[str, Any]:
    response = api.send(path)
    assert response.status_code == 202, response.get_data(as_text=True)
    return dict(response.json)


# --- the fleet event --------------------------------------------------------------------------


def test_the_stream_opens_like_an_agent_stream_and_starts_with_the_fleet_counts(
    api: Api, client: FlaskClient, operator_streams
) -> None:
    api.register("agent-1")
    api.register("agent-2")

    stream = operator_streams()

    assert stream.response.headers["Cache-Control"] == "no-cache"
    assert stream.response.headers["X-Accel-Buffering"] == "no"
    assert counts(stream.next_event()) == fleet(live=2)


def test_the_fleet_counts_follow_registrations_transitions_and_streams(
    api: Api, runtime: Any, clock: FakeClock, operator_streams, streams
) -> None:
    stream = operator_streams()
    assert counts(stream.next_event()) == fleet()

    api.register("agent-1")
    assert last_fleet(stream.until(of("fleet", LIVE=1))) == fleet(live=1)
    streams("agent-1")
    assert last_fleet(stream.until(of("fleet", connected=1))) == fleet(live=1, connected=1)
    clock.advance(STALE)
    runtime.registry.sweep()
    assert last_fleet(stream.until(of("fleet", STALE=1))) == fleet(stale=1, connected=1)


def test_a_burst_of_changes_is_a_few_fleet_events_and_the_last_counts_are_right(
    api: Api, operator_streams
) -> None:
    stream = operator_streams()
    stream.next_event()

    for n in range(50):  # no yield in between: the flusher runs after the burst
        api.register(f"agent-{n:02}")

    events = stream.until(of("fleet", LIVE=50))
    assert len([e for e in events if e.event == "fleet"]) <= 2
    assert len([e for e in events if e.event == "agent"]) == 50
    assert stream.read_for(2 * KEEPALIVE) == []  # nothing more to say


def test_fleet_events_come_at_most_four_a_second_and_the_final_counts_always_arrive(
    make_app: Callable[..., Flask],
) -> None:
    # A keepalive this short makes every read return within 0.05 s: the test reads the
    # stream between two changes, as a dashboard would, and times what it reads.
    app = make_app(keepalive_seconds=0.05)
    client = app.test_client()
    api = Api(client)
    stream = OperatorStream(client)
    stream.next_event()
    observed: list[Event] = []
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < 1.0:
        api.register(f"agent-{n:03}")
        n += 1
        observed += stream.read_for(0.01)

    if not any(of("fleet", LIVE=n)(e) for e in observed):
        observed += stream.until(of("fleet", LIVE=n))
    fleet_events = [e for e in observed if e.event == "fleet"]
    assert last_fleet(fleet_events) == fleet(live=n)
    gaps = [b.read_at - a.read_at for a, b in pairwise(fleet_events)]
    assert n >= 10 and len(fleet_events) <= 6, (n, len(fleet_events))
    assert min(gaps) >= 0.2, gaps  # 0.25 s apart when sent; read with a little jitter
    stream.close()
    assert settle(app.extensions["agent_registry"].operator_events.idle)


# --- agent events -------------------------------------------------------------------------


def test_an_agent_event_when_it_registers_connects_and_disconnects(
    api: Api, operator_streams, streams
) -> None:
    stream = operator_streams()
    api.register("agent-1", "group-a", name="Agent One", version="1.2")

    registered = stream.until(of("agent", id="agent-1"))[-1].data
    assert registered == {**api.agent("agent-1").json, "connected": False}
    assert registered["name"] == "Agent One" and registered["state"] == "LIVE"
    assert "deleted" not in registered

    agent_stream = streams("agent-1")
    assert stream.until(of("agent", id="agent-1", connected=True))
    agent_stream.close()
    assert stream.until(of("agent", id="agent-1", connected=False))


def test_an_agent_event_when_it_goes_stale_dead_and_live_again(
    api: Api, runtime: Any, clock: FakeClock, operator_streams
) -> None:
    api.register("agent-1")
    stream = operator_streams()

    clock.advance(STALE)
    runtime.registry.sweep()
    stale = stream.until(of("agent", id="agent-1"))[-1].data
    assert stale["state"] == "STALE"
    clock.advance(DEAD)
    runtime.registry.sweep()
    assert stream.until(of("agent", id="agent-1", state="DEAD"))
    assert api.heartbeat("agent-1").status_code == 204  # revived by a heartbeat
    assert stream.until(of("agent", id="agent-1", state="LIVE"))
    assert last_fleet(stream.until(of("fleet", LIVE=1))) == fleet(live=1)


def test_a_routine_heartbeat_sends_nothing(api: Api, operator_streams) -> None:
    api.register("agent-1")
    stream = operator_streams()
    stream.next_event()

    for _ in range(5):
        assert api.heartbeat("agent-1").status_code == 204

    assert stream.read_for(2 * KEEPALIVE) == []


def test_a_deleted_agent_is_an_agent_event_marked_deleted(
    api: Api, client: FlaskClient, operator_streams, streams
) -> None:
    api.register("agent-1", "group-a")
    agent_stream = streams("agent-1")
    stream = operator_streams()

    assert client.delete("/api/v1/agents/agent-1").status_code == 204
    assert agent_stream.ended()

    deleted = stream.until(of("agent", id="agent-1", deleted=True))[-1].data
    assert deleted["group"] == "group-a"
    assert deleted["connected"] is False
    assert last_fleet(stream.until(of("fleet", LIVE=0, connected=0))) == fleet()


def test_group_limits_agent_events_to_that_group_and_not_the_rest(
    api: Api, client: FlaskClient, operator_streams
) -> None:
    only_a = operator_streams("?group=group-a")
    everything = operator_streams()
    assert counts(only_a.next_event()) == fleet()

    api.register("b-1", "group-b")
    api.register("a-1", "group-a")
    command = send(api, "b-1/commands")
    assert client.delete("/api/v1/agents/b-1").status_code == 204

    seen = everything.until(of("agent", id="b-1", deleted=True))
    assert {e.data["id"] for e in seen if e.event == "agent"} == {"a-1", "b-1"}
    seen = only_a.until(of("fleet", LIVE=1))  # b-1 deleted: only a-1 is left
    seen += only_a.read_for(2 * KEEPALIVE)
    assert {e.data["id"] for e in seen if e.event == "agent"} == {"a-1"}
    assert command["commandId"] in {e.data["commandId"] for e in seen if e.event == "command"}


# --- command events -----------------------------------------------------------------------


def test_a_command_event_when_it_is_sent_and_when_its_summary_changes(
    api: Api, operator_streams, streams
) -> None:
    api.register("agent-1")
    api.register("agent-2")
    first, _ = streams("agent-1"), streams("agent-2")
    stream = operator_streams()

    answer = send(api, "commands")
    command_id = answer["commandId"]
    sent = stream.until(of("command", commandId=command_id))[-1].data
    without_deliveries = {k: v for k, v in answer.items() if k not in ("deliveries", "summary")}
    assert {k: v for k, v in sent.items() if k != "summary"} == without_deliveries
    assert "deliveries" not in sent
    assert sent["createdBy"] is None and sent["target"] == {"kind": "all", "value": None}
    assert sent["summary"]["targets"] == 2
    first.next_chunk()  # agent-1 reads it: DELIVERED

    assert api.ack("agent-1", command_id).status_code == 200
    acked = stream.until(lambda e: e.event == "command" and e.data["summary"]["acknowledged"])
    assert acked[-1].data["summary"]["acknowledged"] == 1


def test_a_burst_of_acks_is_a_few_command_events_ending_with_every_ack(
    api: Api, operator_streams
) -> None:
    agents = [f"agent-{n:02}" for n in range(30)]
    for agent_id in agents:
        api.register(agent_id)
    command_id = send(api, "commands")["commandId"]
    stream = operator_streams()

    for agent_id in agents:  # no yield in between: one event for the burst
        assert api.ack(agent_id, command_id).status_code == 200

    def all_acked(e: Event) -> bool:
        return e.event == "command" and e.data["summary"]["acknowledged"] == 30

    events = [e for e in stream.until(all_acked) if e.event == "command"]
    assert len(events) <= 2
    assert events[-1].data["summary"] == {
        "targets": 30,
        "pending": 0,
        "delivered": 0,
        "acknowledged": 30,
        "failed": 0,
        "expired": 0,
        "cancelled": 0,
    }


def test_expiry_and_cancel_change_the_summary(
    api: Api, client: FlaskClient, runtime: Any, clock: FakeClock, operator_streams
) -> None:
    api.register("agent-1")
    api.register("agent-2")
    expiring = send(api, "agent-1/commands")["commandId"]
    cancelled = send(api, "agent-2/commands")["commandId"]
    stream = operator_streams()

    assert client.post(f"/api/v1/commands/{cancelled}/cancel").status_code == 200
    assert stream.until(
        lambda e: (
            e.event == "command"
            and e.data["commandId"] == cancelled
            and e.data["summary"]["cancelled"] == 1
        )
    )
    clock.advance(61)
    runtime.commands.expire()
    assert stream.until(
        lambda e: (
            e.event == "command"
            and e.data["commandId"] == expiring
            and e.data["summary"]["expired"] == 1
        )
    )


# --- ping, slow readers, shutdown, queries ---------------------------------------------------


def test_an_idle_stream_is_pinged(operator_streams) -> None:
    stream = operator_streams()
    stream.next_event()

    assert stream.read_for(2.5 * KEEPALIVE) == []
    assert stream.pings >= 1


def test_a_stream_that_stops_reading_is_ended_when_its_queue_is_full(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(keepalive_seconds=KEEPALIVE, operator_stream_queue_size=3)
    client = app.test_client()
    api = Api(client)
    runtime = app.extensions["agent_registry"]
    stream = OperatorStream(client)
    stream.next_event()
    for n in range(10):
        api.register(f"agent-{n}")
    # The flusher runs (and fills the queue) while nobody reads: wait for it.
    assert settle(runtime.operator_events.idle)

    left = stream.read_to_end()

    assert len(left) == 3  # what was queued before the queue filled
    stream.close()


def test_shutdown_ends_operator_streams_and_those_opened_after(
    client: FlaskClient, runtime: Any
) -> None:
    open_before = OperatorStream(client)

    runtime.stop()

    assert [e.event for e in open_before.read_to_end()] == ["fleet"]  # its first event
    opened_after = OperatorStream(client)  # answered, then ended at once
    assert [e.event for e in opened_after.read_to_end()] == ["fleet"]
    open_before.close()
    opened_after.close()


@pytest.mark.parametrize(
    ("query", "field"),
    [("?group=bad%20name", "group"), ("?group=", "group"), ("?status=LIVE", "status")],
)
def test_a_bad_query_is_400_naming_the_field(client: FlaskClient, query: str, field: str) -> None:
    assert_error(client.get(f"/api/v1/events{query}"), 400, "VALIDATION_FAILED", {field})


# --- with auth on ------------------------------------------------------------------------------


@pytest.fixture
def secured(make_app: Callable[..., Flask], clock: FakeClock, tmp_path: Path) -> Fleet:
    key = tmp_path / "signing.pem"
    key.write_bytes(generate_pem())
    app = make_app(
        auth="on", token_secret=SECRET, signing_key_file=str(key), keepalive_seconds=KEEPALIVE
    )
    return Fleet(app, clock)


def test_with_auth_on_any_operator_role_may_read_it(secured: Fleet) -> None:
    for role in Role:
        token = secured.operator(role, ["elsewhere"])
        stream = OperatorStream(secured.client, headers={"Authorization": f"Bearer {token}"})
        assert counts(stream.next_event()) == fleet()
        stream.close()


def test_with_auth_on_an_agent_or_enrollment_token_or_none_is_refused(secured: Fleet) -> None:
    agent_token = secured.enroll("agent-1")

    assert_error(secured.call("GET", "/api/v1/events", agent_token), 403, "FORBIDDEN")
    assert_error(secured.call("GET", "/api/v1/events", secured.enrollment()), 403, "FORBIDDEN")
    assert_error(secured.call("GET", "/api/v1/events"), 401, "UNAUTHENTICATED")
    assert_error(secured.call("GET", "/api/v1/events", "not-a-token"), 401, "UNAUTHENTICATED")
    assert not secured.app.extensions["agent_registry"].operator_hub


def test_with_auth_on_a_command_event_names_who_sent_it(secured: Fleet) -> None:
    secured.enroll("agent-1")
    viewer = secured.operator(Role.VIEWER)
    stream = OperatorStream(secured.client, headers={"Authorization": f"Bearer {viewer}"})

    sent = secured.send("agent-1/commands", secured.operator(Role.OPERATOR, sub="carol"))
    assert sent.status_code == 202

    found = stream.until(of("command", commandId=sent.json["commandId"]))[-1]
    assert found.data["createdBy"] == "carol"
    stream.close()


@pytest.mark.parametrize("store_url", ["memory"])
def test_the_operator_streams_gauge_follows_them(client: FlaskClient, operator_streams) -> None:
    first, _ = operator_streams(), operator_streams("?group=g")
    assert scrape(client)[("agent_registry_operator_streams_open", ())] == 2

    first.close()
    assert scrape(client)[("agent_registry_operator_streams_open", ())] == 1

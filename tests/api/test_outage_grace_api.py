"""Outage grace through the app on both stores: the runtime's wiring, the API's view of it
and its metrics (the rule itself: tests/core/test_outage_grace.py)."""

from __future__ import annotations

from harness.api_actions import Api
from harness.clock import FakeClock
from tests.api.test_metrics_api import scrape


def test_an_outage_between_two_sweeps_moves_the_stale_deadline_and_is_counted_once(
    make_app, clock: FakeClock
) -> None:
    app = make_app(sweep_interval_seconds=1, stale_after_seconds=90, dead_after_seconds=300)
    client = app.test_client()
    sweeper = app.extensions["agent_registry"].sweeper

    def sweep_every_second_for(seconds: int) -> None:
        for _ in range(seconds):
            clock.advance(1)
            sweeper.sweep_lifecycle()

    assert Api(client).register("grace-1", "g").status_code == 201  # at T0 (10:15:30)
    sweeper.sweep_lifecycle()
    clock.advance(60)  # no sweep for a minute: an outage from T0 to T0 + 60
    sweeper.sweep_lifecycle()
    sweep_every_second_for(89)  # T0 + 149: past the old deadline (T0 + 90)
    assert client.get("/api/v1/agents/grace-1").get_json()["state"] == "LIVE"
    sweep_every_second_for(1)

    agent = client.get("/api/v1/agents/grace-1").get_json()
    # At the end of the outage + staleAfter: T0 + 150.
    assert (agent["state"], agent["stateChangedAt"]) == ("STALE", "2026-03-11T10:18:00.000Z")
    samples = scrape(client)
    assert samples[("agent_registry_outages_total", ())] == 1
    assert samples[("agent_registry_outage_seconds_total", ())] == 60

"""Outage grace through real servers: a paused server, a paused Redis (API.md § Lifecycle).

Regression (issue 12, item 1): during an 8 s SIGSTOP of Redis every agent kept heartbeating,
yet 134 of 200 went STALE and 122 DEAD once Redis was back.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from harness.gunicorn import GunicornServer
from harness.redis_server import RedisServer
from harness.wait import holds_for, wait_until

pytestmark = pytest.mark.e2e

# A heartbeat every BEAT_EVERY against a STALE_AFTER twelve times as long: the agents'
# heartbeat threads share a loaded machine with the rest of the suite.
STALE_AFTER = 3.0
DEAD_AFTER = 1.0
LIFECYCLE = {
    "AGENT_REGISTRY_STALE_AFTER_SECONDS": str(STALE_AFTER),
    "AGENT_REGISTRY_DEAD_AFTER_SECONDS": str(DEAD_AFTER),
    "AGENT_REGISTRY_SWEEP_INTERVAL_SECONDS": "0.2",
    "AGENT_REGISTRY_HEARTBEAT_INTERVAL_SECONDS": "0.25",
}
AGENTS = 20
BEAT_EVERY = 0.25
PAUSE = STALE_AFTER + DEAD_AFTER + 1.0  # longer than STALE + DEAD together
SLACK = 2.0  # for a loaded machine: a sweep late, a poll late


class Heartbeats:
    """One thread per agent, heartbeating every BEAT_EVERY seconds until silenced; answers
    that fail (503 while Redis is paused) are counted and the agent carries on."""

    def __init__(self, url: str, agent_ids: list[str]) -> None:
        self.url = url
        self.silenced = {agent_id: threading.Event() for agent_id in agent_ids}
        self.answers: dict[int, int] = {}
        self.last_answered: dict[str, float] = {}  # agent id -> time.time() of its last 204
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._beat, args=(agent_id,), daemon=True)
            for agent_id in agent_ids
        ]

    def __enter__(self) -> Heartbeats:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for event in self.silenced.values():
            event.set()
        for thread in self._threads:
            thread.join(30)

    def silence(self, agent_ids: list[str]) -> None:
        for agent_id in agent_ids:
            self.silenced[agent_id].set()

    def _beat(self, agent_id: str) -> None:
        silenced = self.silenced[agent_id]
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not silenced.wait(BEAT_EVERY):
                try:
                    status = http.post(f"/api/v1/agents/{agent_id}/heartbeat").status_code
                except httpx.HTTPError:
                    status = 0
                with self._lock:
                    self.answers[status] = self.answers.get(status, 0) + 1
                    if status == 204:
                        self.last_answered[agent_id] = time.time()

    def beaten_since(self, moment: float) -> bool:
        """Every agent had a heartbeat answered after ``moment`` (``time.time()``)."""
        with self._lock:
            return all(self.last_answered.get(i, 0) > moment for i in self.silenced)


def agents_by_id(http: httpx.Client) -> dict[str, dict]:
    return {agent["id"]: agent for agent in http.get("/api/v1/agents").json()}


def pause_and_check(server: GunicornServer, pause: Callable[[], None], resume: Callable[[], None]):
    """Heartbeating agents across a pause of PAUSE seconds: none goes STALE or DEAD (each is
    LIVE with the stateChangedAt it had before the pause), and afterwards the agents that stop
    heartbeating go STALE on time, dated their last heartbeat + staleAfter."""
    agent_ids = [f"grace-{n:02d}" for n in range(AGENTS)]
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for agent_id in agent_ids:
            answer = http.post("/api/v1/agents/register", json={"id": agent_id, "group": "g"})
            assert answer.status_code == 201
        beating_from = time.time()
        with Heartbeats(server.url, agent_ids) as beats:
            # Paused only once every agent heartbeats: a deadline that passed before the pause
            # is not the pause's doing.
            assert wait_until(lambda: beats.beaten_since(beating_from), SLACK)
            before = agents_by_id(http)
            assert {a["state"] for a in before.values()} == {"LIVE"}, before
            unpaused = {agent_id: a["stateChangedAt"] for agent_id, a in before.items()}
            pause()
            try:
                time.sleep(PAUSE)  # the pause itself; the agents go on heartbeating meanwhile
            finally:
                resume()
                resumed_at = datetime.fromtimestamp(time.time(), UTC).isoformat()
            # Grace lasts STALE_AFTER from the end of the pause: past it, anyone the pause
            # had made STALE (or DEAD) would have been revived by a heartbeat, which shows as a
            # stateChangedAt other than before the pause.
            assert wait_until(lambda: len(agents_by_id(http)) == AGENTS, SLACK)

            def untouched() -> bool:
                now = agents_by_id(http)
                return {i: (a["state"], a["stateChangedAt"]) for i, a in now.items()} == {
                    i: ("LIVE", changed) for i, changed in unpaused.items()
                }

            # On failure: revived at about ``resumed_at`` (the sweep after the pause did not
            # grace them) or later (their heartbeats stalled for STALE_AFTER).
            assert holds_for(untouched, STALE_AFTER + SLACK), (
                changed_since(http, unpaused),
                f"resumed at {resumed_at}",
                beats.answers,
            )
            quiet = agent_ids[:5]
            beats.silence(quiet)

            def all_stale() -> dict[str, dict] | None:
                now = agents_by_id(http)
                return now if all(now[i]["state"] == "STALE" for i in quiet) else None

            stale = wait_until(all_stale, STALE_AFTER + SLACK)
            assert stale, agents_by_id(http)
            for agent_id in quiet:
                agent = stale[agent_id]
                late = _seconds(agent["stateChangedAt"]) - _seconds(agent["lastHeartbeatAt"])
                assert late == pytest.approx(STALE_AFTER, abs=0.01), agent
            assert {stale[i]["state"] for i in agent_ids[5:]} == {"LIVE"}
        return beats.answers


def changed_since(http: httpx.Client, unpaused: dict[str, str]) -> dict[str, tuple[str, str]]:
    """The agents not LIVE since the snapshot: (state, stateChangedAt) of each."""
    return {
        agent_id: (agent["state"], agent["stateChangedAt"])
        for agent_id, agent in agents_by_id(http).items()
        if (agent["state"], agent["stateChangedAt"]) != ("LIVE", unpaused.get(agent_id))
    }


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_a_sigstopped_memory_store_server_makes_no_agent_stale_or_dead(start_server):
    server = start_server(LIFECYCLE)

    def pause() -> None:
        os.killpg(server.pid, signal.SIGSTOP)  # the whole server: master and worker

    def resume() -> None:
        os.killpg(server.pid, signal.SIGCONT)

    pause_and_check(server, pause, resume)


@pytest.mark.redis
def test_a_sigstopped_redis_under_two_workers_makes_no_agent_stale_or_dead(
    start_server, own_redis: RedisServer
):
    server = start_server({**LIFECYCLE, "AGENT_REGISTRY_STORE": own_redis.url}, workers=2)
    answers = pause_and_check(
        server, lambda: own_redis.signal(signal.SIGSTOP), lambda: own_redis.signal(signal.SIGCONT)
    )
    assert answers.get(503, 0) > 0  # heartbeats did fail while Redis was paused

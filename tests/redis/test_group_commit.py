"""Group commit: concurrent greenlets' heartbeats reach Redis as one script call, and each
caller gets its own outcome, only once Redis has run it."""

from __future__ import annotations

import time

import gevent
import pytest
import redis
from gevent.event import Event

from agent_registry.core.models import Agent, AgentState, HeartbeatOutcome
from agent_registry.redis import group_commit
from agent_registry.redis.agents import RedisAgentStore
from agent_registry.redis.group_commit import GroupCommit
from harness.clock import T0
from tests.redis.helpers import command_calls

pytestmark = pytest.mark.redis


def registered(store: RedisAgentStore, agent_id: str) -> Agent:
    agent = Agent(
        id=agent_id,
        name=agent_id,
        group="g",
        version="1",
        route_ids=[],
        capabilities={},
        state=AgentState.LIVE,
        registered_at=T0,
        last_heartbeat_at=T0,
        state_changed_at=T0,
        deadline=T0 + 90,
    )
    stored = store.register(agent)
    assert stored is not None
    return stored[0]


def test_heartbeats_from_many_greenlets_share_one_script_call(redis_client):
    store = RedisAgentStore(redis_client, group_commit=True)
    agents = [registered(store, f"a{index:03}") for index in range(200)]
    store.heartbeat("nobody", T0, T0 + 90)  # loads the script (a NOSCRIPT retry is a call)
    assert store.heartbeat_batches is not None
    batches_before = store.heartbeat_batches.batches
    before = command_calls(redis_client, "evalsha")

    beats = [
        gevent.spawn(store.heartbeat, agent.id, T0 + index, T0 + index + 90, agent.generation)
        for index, agent in enumerate(agents)
    ]
    unknown = gevent.spawn(store.heartbeat, "nobody", T0 + 1, T0 + 91)
    stale_token = gevent.spawn(store.heartbeat, "a007", T0 + 1, T0 + 91, 12345)
    gevent.joinall([*beats, unknown, stale_token], raise_error=True)

    assert [beat.value for beat in beats] == [HeartbeatOutcome.RECORDED] * 200
    assert unknown.value is HeartbeatOutcome.UNKNOWN
    assert stale_token.value is HeartbeatOutcome.SUPERSEDED
    # All 202 were waiting before the flusher ran: one batch (MAX_BATCH is 256).
    assert store.heartbeat_batches.batches - batches_before == 1
    assert command_calls(redis_client, "evalsha") - before == 1
    for index, agent in enumerate(agents):
        stored = store.get(agent.id)
        assert stored is not None
        assert (stored.last_heartbeat_at, stored.deadline) == (T0 + index, T0 + index + 90)


def test_a_heartbeat_in_a_batch_revives_a_stale_agent_as_alone(redis_client):
    store = RedisAgentStore(redis_client, group_commit=True)
    stale = registered(store, "stale-one")
    assert store.transition("stale-one", T0 + 90, AgentState.STALE, T0 + 90, T0 + 390)
    live = registered(store, "live-one")

    beats = [
        gevent.spawn(store.heartbeat, agent.id, T0 + 95, T0 + 185, agent.generation)
        for agent in (stale, live)
    ]
    gevent.joinall(beats, raise_error=True)

    revived = store.get("stale-one")
    assert revived is not None
    assert (revived.state, revived.state_changed_at) == (AgentState.LIVE, T0 + 95)
    assert store.counts()[AgentState.LIVE] == 2


def test_without_group_commit_each_heartbeat_is_its_own_call(redis_client):
    store = RedisAgentStore(redis_client)
    agent = registered(store, "alone")
    store.heartbeat("nobody", T0, T0 + 90)  # loads the script
    before = command_calls(redis_client, "evalsha")

    beats = [gevent.spawn(store.heartbeat, "alone", T0 + i, T0 + i + 90) for i in range(5)]
    gevent.joinall(beats, raise_error=True)

    assert store.heartbeat_batches is None
    assert command_calls(redis_client, "evalsha") - before == 5
    assert store.get(agent.id) is not None


# GroupCommit itself, with a send that records what it was given -------------------------


class Recorder:
    def __init__(self, fail_on: object = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on

    def send(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        if self.fail_on in items:
            raise ValueError(f"refused {self.fail_on}")
        gevent.sleep(0.001)  # on the wire: callers arriving now wait for the next batch
        return [item * 10 for item in items]


def test_each_caller_gets_its_own_answer_and_batches_keep_arrival_order():
    recorder = Recorder()
    commit = GroupCommit(recorder.send, max_batch=4)

    callers = [gevent.spawn(commit.call, item) for item in range(10)]
    gevent.joinall(callers, raise_error=True)

    assert [caller.value for caller in callers] == [item * 10 for item in range(10)]
    assert recorder.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_items_that_arrive_while_a_batch_is_on_the_wire_go_in_the_next():
    recorder = Recorder()
    commit = GroupCommit(recorder.send)
    first = gevent.spawn(commit.call, 1)
    while not recorder.batches:  # the first batch [1] is sent
        gevent.sleep(0.0001)
    later = [gevent.spawn(commit.call, item) for item in (2, 3)]
    gevent.joinall([first, *later], raise_error=True)

    assert recorder.batches == [[1], [2, 3]]


def busy_for(seconds: float) -> None:
    """Work that keeps the worker's loop from ever being idle: a greenlet always ready."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        gevent.sleep(0)


def test_a_batch_waits_until_the_worker_has_nothing_else_ready():
    recorder = Recorder()
    commit = GroupCommit(recorder.send)
    callers = []
    for item in range(5):  # one per turn of the loop, as requests parsed one by one
        callers.append(gevent.spawn(commit.call, item))
        gevent.sleep(0)
    gevent.joinall(callers, raise_error=True)

    assert recorder.batches == [[0, 1, 2, 3, 4]]


def test_an_idle_worker_sends_at_once_not_after_the_bound(monkeypatch):
    monkeypatch.setattr(group_commit, "MAX_WAIT", 30.0)
    recorder = Recorder()
    commit = GroupCommit(recorder.send)
    with gevent.Timeout(5):  # only the idle watcher can send it in time
        assert commit.call(4) == 40
    assert recorder.batches == [[4]]


def test_a_worker_that_stays_busy_still_sends_its_batch_soon():
    recorder = Recorder()
    commit = GroupCommit(recorder.send)
    busy = gevent.spawn(busy_for, 2.0)
    started = time.monotonic()
    caller = gevent.spawn(commit.call, 7)
    caller.join()
    answered = time.monotonic() - started
    busy.kill()

    assert caller.value == 70
    # MAX_WAIT (2 ms) or gevent's next look at its timers (every switch interval, 5 ms,
    # while callbacks keep it busy), with a wide margin for a loaded test machine.
    assert answered < 0.5


def test_a_failed_send_fails_its_whole_batch_and_only_it():
    recorder = Recorder(fail_on=2)
    commit = GroupCommit(recorder.send, max_batch=2)

    callers = [gevent.spawn(commit.call, item) for item in range(4)]
    gevent.joinall(callers)

    assert callers[0].value == 0 and callers[1].value == 10
    assert all(isinstance(caller.exception, ValueError) for caller in callers[2:])
    assert commit.call(5) == 50  # a new flusher after the failure


def test_items_waiting_behind_a_failed_batch_fail_with_it_unsent():
    """As with a paused Redis: the batch on the wire fails after its timeout, and those
    that queued meanwhile are answered then, not after a second timeout."""
    sent: list[list[int]] = []
    timed_out = Event()

    def send(items: list[int]) -> list[int]:
        sent.append(items)
        timed_out.wait()
        raise ConnectionError("no answer")

    commit = GroupCommit(send)
    first = gevent.spawn(commit.call, 1)
    while not sent:  # [1] is on the wire
        gevent.sleep(0.0001)
    behind = [gevent.spawn(commit.call, item) for item in (2, 3)]
    gevent.sleep(0)  # each of them runs until it waits for its answer
    # The batch fails only now: a fixed wait in send() lost the race on a loaded machine
    # (the callers queued after it had failed, and were sent as a batch of their own).
    timed_out.set()
    gevent.joinall([first, *behind], timeout=10)

    assert sent == [[1]]
    assert all(isinstance(caller.exception, ConnectionError) for caller in [first, *behind])


def test_a_caller_returns_only_after_its_batch_was_sent():
    sent: list[int] = []

    def send(items: list[int]) -> list[int]:
        gevent.sleep(0.01)
        sent.extend(items)
        return items

    commit = GroupCommit(send)
    assert commit.call(7) == 7
    assert sent == [7]


def test_a_killed_flusher_fails_every_waiting_caller_instead_of_leaving_it_blocked():
    def send(items: list[int]) -> list[int]:
        gevent.sleep(10)
        return items

    commit = GroupCommit(send)
    callers = [gevent.spawn(commit.call, item) for item in range(3)]
    gevent.sleep(0.01)
    assert commit._flusher is not None
    commit._flusher.kill()
    gevent.joinall(callers, timeout=5)

    assert all(caller.ready() for caller in callers)
    assert all(isinstance(caller.exception, redis.ConnectionError) for caller in callers)


def test_generation_reads_from_many_greenlets_share_one_round_trip(redis_client):
    store = RedisAgentStore(redis_client, group_commit=True)
    agents = [registered(store, f"g{index:03}") for index in range(50)]
    assert store.generation_batches is not None
    before = store.generation_batches.batches

    reads = [gevent.spawn(store.generation, agent.id) for agent in agents]
    missing = gevent.spawn(store.generation, "nobody")
    gevent.joinall([*reads, missing], raise_error=True)

    assert [read.value for read in reads] == [agent.generation for agent in agents]
    assert missing.value is None
    assert store.generation_batches.batches - before == 1

"""Every AgentStore and CommandStore method, called directly, on the memory and Redis stores.

The core relies on these results (ports.py): the compare-and-set methods report whether
they applied, and the deadline indexes return what is due, earliest first.
"""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from agent_registry.core.acknowledgement import AckVerdict
from agent_registry.core.agent_query import EVERY_AGENT, AgentQuery
from agent_registry.core.models import (
    AckResult,
    AckStatus,
    Agent,
    AgentState,
    Command,
    CommandType,
    Delivery,
    DeliveryStatus,
    HeartbeatOutcome,
    Outage,
    SweepNote,
    Target,
    TargetKind,
)
from agent_registry.core.ports import AgentStore
from agent_registry.redis.agents import LAST_SWEEP, RedisAgentStore
from agent_registry.redis.client import connect
from agent_registry.redis.commands import RedisCommandStore
from harness.clock import T0

LIVE, STALE, DEAD = AgentState.LIVE, AgentState.STALE, AgentState.DEAD
PENDING, DELIVERED = DeliveryStatus.PENDING, DeliveryStatus.DELIVERED
ACKNOWLEDGED, EXPIRED = DeliveryStatus.ACKNOWLEDGED, DeliveryStatus.EXPIRED
CANCELLED, FAILED = DeliveryStatus.CANCELLED, DeliveryStatus.FAILED


def listed(agents: AgentStore, **where: Any) -> list[str]:
    """The ids ``list`` answers for the query these filters make."""
    return [agent.id for agent in agents.list(AgentQuery(**where))]


def agent(agent_id: str, group: str = "g", at: float = T0, **fields: Any) -> Agent:
    values: dict[str, Any] = {
        "id": agent_id,
        "name": agent_id,
        "group": group,
        "version": "1.0",
        "route_ids": ["r1"],
        "capabilities": {"trace": True},
        "state": LIVE,
        "registered_at": at,
        "last_heartbeat_at": at,
        "state_changed_at": at,
        "deadline": at + 90,
    }
    values.update(fields)
    return Agent(**values)


def command(command_id: str, created: float = T0, expires: float = T0 + 60) -> Command:
    return Command(
        command_id, CommandType.DEEP_TRACE, {"n": 1}, Target(TargetKind.ALL), created, expires
    )


# AgentStore ---------------------------------------------------------------------------------


def test_register_inserts_then_replaces_keeping_registered_at(agents):
    stored, created = agents.register(agent("a1"))
    assert created is True
    assert stored == agent("a1")
    again, created = agents.register(agent("a1", group="h", at=T0 + 5))
    assert created is False
    assert again.registered_at == T0
    assert again.state_changed_at == T0  # it was LIVE already: no transition
    assert again.group == "h"
    assert agents.get("a1") == again
    assert agents.live_ids("g") == []
    assert agents.live_ids("h") == ["a1"]


def test_register_of_a_dead_agent_makes_it_live_now(agents):
    agents.register(agent("a1"))
    agents.transition("a1", T0 + 90, DEAD, T0 + 90, None)
    revived, _ = agents.register(agent("a1", at=T0 + 5))
    assert revived.state == LIVE
    assert revived.state_changed_at == T0 + 5
    assert revived.registered_at == T0


def test_heartbeat_moves_the_deadline_and_revives(agents):
    assert agents.heartbeat("nobody", T0, T0 + 90) is UNKNOWN
    agents.register(agent("a1"))
    assert agents.transition("a1", T0 + 90, STALE, T0 + 90, T0 + 390) is True
    assert agents.heartbeat("a1", T0 + 100, T0 + 190) is REVIVED
    record = agents.get("a1")
    assert (record.state, record.last_heartbeat_at, record.deadline) == (LIVE, T0 + 100, T0 + 190)
    assert record.state_changed_at == T0 + 100
    assert agents.heartbeat("a1", T0 + 110, T0 + 200) is RECORDED
    assert agents.get("a1").state_changed_at == T0 + 100  # LIVE stayed LIVE


RECORDED, UNKNOWN = HeartbeatOutcome.RECORDED, HeartbeatOutcome.UNKNOWN
SUPERSEDED, REVIVED = HeartbeatOutcome.SUPERSEDED, HeartbeatOutcome.REVIVED
GEN = 1_773_224_130_000  # a registration's generation: its time in milliseconds


def test_every_registration_raises_the_generation(agents):
    stored, _ = agents.register(agent("a1", generation=GEN))
    assert stored.generation == GEN
    # In the same millisecond, or with a clock that went back: still one more.
    again, _ = agents.register(agent("a1", generation=GEN))
    assert again.generation == GEN + 1
    later, _ = agents.register(agent("a1", generation=GEN + 500))
    assert later.generation == GEN + 500
    assert agents.get("a1").generation == GEN + 500


def test_a_renewal_with_an_old_generation_changes_nothing(agents):
    agents.register(agent("a1", generation=GEN))
    before = agents.get("a1")
    assert agents.register(agent("a1", group="h", generation=GEN + 9), GEN - 1) is None
    assert agents.register(agent("nobody", generation=GEN), GEN) is None
    assert agents.get("a1") == before
    assert agents.get("nobody") is None
    renewed, created = agents.register(agent("a1", group="h", generation=GEN + 9), GEN)
    assert (renewed.group, renewed.generation, created) == ("h", GEN + 9, False)


def test_a_heartbeat_with_an_old_generation_changes_nothing(agents):
    agents.register(agent("a1", generation=GEN))
    agents.transition("a1", T0 + 90, STALE, T0 + 90, T0 + 390)
    before = agents.get("a1")
    assert agents.heartbeat("a1", T0 + 100, T0 + 190, GEN - 1) is SUPERSEDED
    assert agents.heartbeat("nobody", T0 + 100, T0 + 190, GEN) is UNKNOWN
    assert agents.get("a1") == before
    assert agents.heartbeat("a1", T0 + 100, T0 + 190, GEN) is REVIVED
    assert agents.get("a1").state == LIVE


def test_get_and_get_many_keep_order_and_gaps(agents):
    assert agents.get("a1") is None
    agents.register(agent("a1"))
    agents.register(agent("a2"))
    assert [a and a.id for a in agents.get_many(["a2", "zz", "a1"])] == ["a2", None, "a1"]
    assert agents.get_many([]) == []


def test_list_filters_by_state_and_group_and_pages_by_id(agents):
    for agent_id, group in [("b", "g"), ("a", "h"), ("c", "g"), ("é", "g")]:
        agents.register(agent(agent_id, group))
    agents.transition("c", T0 + 90, STALE, T0 + 90, T0 + 390)
    assert listed(agents) == ["a", "b", "c", "é"]
    assert listed(agents, states={LIVE}) == ["a", "b", "é"]
    assert listed(agents, states={STALE, DEAD}) == ["c"]
    assert listed(agents, group="g") == ["b", "c", "é"]
    assert listed(agents, states={LIVE}, group="g") == ["b", "é"]
    assert listed(agents, after="b", limit=1) == ["c"]
    assert listed(agents, after="é") == []
    assert agents.live_ids() == ["a", "b", "é"]
    assert agents.live_ids("g") == ["b", "é"]


def small_fleet(agents) -> None:
    """12 agents, ids a00..a11: group g{n % 3}; a02, a05, a08, a11 STALE, a11 then DEAD."""
    for n in range(12):
        agents.register(agent(f"a{n:02d}", f"g{n % 3}"))
    for n in (2, 5, 8, 11):
        agents.transition(f"a{n:02d}", T0 + 90, STALE, T0 + 90, T0 + 390)
    agents.transition("a11", T0 + 390, DEAD, T0 + 390, None)


FILTERS = [
    {},
    {"states": {LIVE}},
    {"states": {STALE, DEAD}},
    {"states": {DEAD}},
    {"group": "g2"},
    {"group": "g2", "states": {STALE}},
    {"group": "g1", "states": {STALE, DEAD}},  # no match
    {"group": "nobody"},
    {"states": {LIVE}, "after": "a04"},
    {"group": "g0", "after": "a03", "limit": 2},
    {"after": "a09", "limit": 5},
    {"states": {LIVE}, "limit": 1},
]


@pytest.mark.parametrize("size", [1, 2, 5, 100])
def test_pages_hold_what_list_returns_a_page_at_a_time(agents, size):
    small_fleet(agents)
    for where in FILTERS:
        pages = list(agents.pages(AgentQuery(**where), size=size))
        assert all(0 < len(page) <= size for page in pages), where
        assert [a.id for page in pages for a in page] == [
            a.id for a in agents.list(AgentQuery(**where))
        ]


def test_filtered_lists_use_the_state_and_group_indexes(agents):
    small_fleet(agents)
    assert listed(agents, group="g2") == ["a02", "a05", "a08", "a11"]
    assert listed(agents, group="g2", states={STALE}) == [
        "a02",
        "a05",
        "a08",
    ]
    assert listed(agents, group="g2", states={LIVE}) == []
    assert listed(agents, states={DEAD}) == ["a11"]
    assert listed(agents, states={STALE, DEAD}, after="a05") == [
        "a08",
        "a11",
    ]
    # A re-registration moves the agent out of its old group and state.
    agents.register(agent("a05", "g0"))
    assert listed(agents, group="g2", states={STALE}) == ["a02", "a08"]
    assert "a05" in listed(agents, group="g0", states={LIVE})


def test_pages_read_each_page_when_asked_each_id_once_in_order(agents):
    """Between two pages the fleet changes (a big answer lets other requests run): an agent
    is listed as its page reads it, never twice, and the order holds."""
    for n in range(0, 20, 2):
        agents.register(agent(f"a{n:02d}", "g"))
    pages = agents.pages(AgentQuery(states={LIVE}, group="g"), size=3)
    assert [a.id for a in next(pages)] == ["a00", "a02", "a04"]
    agents.register(agent("a01", "g"))  # before the cursor: not listed
    agents.register(agent("a06", "h"))  # left the group
    agents.transition("a08", T0 + 90, STALE, T0 + 90, T0 + 390)  # left the state
    agents.heartbeat("a10", T0 + 5, T0 + 95)  # changed, still matches
    rest = [a for page in pages for a in page]
    assert [a.id for a in rest] == ["a10", "a12", "a14", "a16", "a18"]
    assert rest[0].last_heartbeat_at == T0 + 5

    unfiltered = agents.pages(EVERY_AGENT, size=4)
    first = [a.id for a in next(unfiltered)]
    agents.register(agent("a07", "g"))  # after the cursor, in id order: listed
    agents.register(agent("a03", "g"))  # before it: not
    ids = first + [a.id for page in unfiltered for a in page]
    assert ids == sorted(set(ids))
    assert "a07" in ids and "a03" not in ids


def test_due_returns_what_is_due_earliest_first_up_to_the_limit(agents):
    agents.register(agent("late", deadline=T0 + 30))
    agents.register(agent("early", deadline=T0 + 10))
    agents.register(agent("later", deadline=T0 + 50))
    assert agents.due(T0 + 5, 10) == []
    assert [a.id for a in agents.due(T0 + 30, 10)] == ["early", "late"]
    assert [a.id for a in agents.due(T0 + 100, 1)] == ["early"]


def test_transition_is_a_compare_and_set_on_the_deadline(agents):
    agents.register(agent("a1", deadline=T0 + 90))
    assert agents.transition("a1", T0 + 80, STALE, T0 + 90, T0 + 390) is False
    assert agents.get("a1").state == LIVE
    assert agents.transition("a1", T0 + 90, STALE, T0 + 90, T0 + 390) is True
    assert agents.transition("a1", T0 + 90, STALE, T0 + 90, T0 + 390) is False  # once only
    record = agents.get("a1")
    assert (record.state, record.state_changed_at, record.deadline) == (STALE, T0 + 90, T0 + 390)
    assert agents.due(T0 + 100, 10) == []
    assert agents.transition("a1", T0 + 390, DEAD, T0 + 390, None) is True
    assert agents.get("a1").deadline is None
    assert agents.due(T0 + 10_000, 10) == []
    assert agents.live_ids() == []
    assert agents.transition("nobody", T0, DEAD, T0, None) is False


def counts_of(agents) -> tuple[int, int, int]:
    counts = agents.counts()
    assert set(counts) == set(AgentState), counts
    return counts[LIVE], counts[STALE], counts[DEAD]


def test_counts_start_at_zero_for_every_state(agents):
    assert agents.counts() == {LIVE: 0, STALE: 0, DEAD: 0}


def test_counts_follow_registration_and_re_registration(agents):
    agents.register(agent("a1"))
    agents.register(agent("a2", group="h"))
    assert counts_of(agents) == (2, 0, 0)
    agents.register(agent("a1", group="h", at=T0 + 5))  # LIVE again: still one agent
    assert counts_of(agents) == (2, 0, 0)
    agents.transition("a1", T0 + 95, STALE, T0 + 95, T0 + 395)
    assert counts_of(agents) == (1, 1, 0)
    agents.register(agent("a1", at=T0 + 100))  # a STALE agent registers: LIVE
    assert counts_of(agents) == (2, 0, 0)
    agents.transition("a2", T0 + 90, STALE, T0 + 90, T0 + 390)
    agents.transition("a2", T0 + 390, DEAD, T0 + 390, None)
    assert counts_of(agents) == (1, 0, 1)
    agents.register(agent("a2", at=T0 + 400))  # a DEAD agent registers: LIVE
    assert counts_of(agents) == (2, 0, 0)


def test_counts_follow_heartbeats_that_revive_stale_and_dead_agents(agents):
    for agent_id in ("a1", "a2", "a3"):
        agents.register(agent(agent_id))
    agents.transition("a1", T0 + 90, STALE, T0 + 90, T0 + 390)
    agents.transition("a2", T0 + 90, STALE, T0 + 90, T0 + 390)
    agents.transition("a2", T0 + 390, DEAD, T0 + 390, None)
    assert counts_of(agents) == (1, 1, 1)
    assert agents.heartbeat("a3", T0 + 10, T0 + 100) is RECORDED  # LIVE stays LIVE
    assert counts_of(agents) == (1, 1, 1)
    assert agents.heartbeat("a1", T0 + 100, T0 + 190) is REVIVED  # from STALE
    assert counts_of(agents) == (2, 0, 1)
    assert agents.heartbeat("a2", T0 + 400, T0 + 490) is REVIVED  # from DEAD
    assert counts_of(agents) == (3, 0, 0)
    assert agents.heartbeat("nobody", T0, T0 + 90) is UNKNOWN
    assert counts_of(agents) == (3, 0, 0)


def test_counts_follow_sweep_transitions_and_ignore_the_ones_that_lost(agents):
    agents.register(agent("a1"))
    agents.register(agent("a2"))
    assert agents.transition("a1", T0 + 80, STALE, T0 + 90, T0 + 390) is False  # lost
    assert counts_of(agents) == (2, 0, 0)
    assert agents.transition("a1", T0 + 90, STALE, T0 + 90, T0 + 390) is True
    assert agents.transition("a1", T0 + 90, STALE, T0 + 90, T0 + 390) is False  # once only
    assert counts_of(agents) == (1, 1, 0)
    assert agents.transition("a1", T0 + 390, DEAD, T0 + 390, None) is True
    assert counts_of(agents) == (1, 0, 1)
    assert agents.transition("nobody", T0, DEAD, T0, None) is False
    assert counts_of(agents) == (1, 0, 1)
    assert counts_of(agents) == (
        len(agents.list(AgentQuery(states={LIVE}))),
        len(agents.list(AgentQuery(states={STALE}))),
        len(agents.list(AgentQuery(states={DEAD}))),
    )


# CommandStore -------------------------------------------------------------------------------


def test_add_get_and_get_delivery(commands):
    assert commands.get("c1") is None
    commands.add(command("c1"), [Delivery("a"), Delivery("b")])  # the core adds them by id
    snapshot = commands.get("c1")
    assert snapshot.command == command("c1")
    assert [d.agent_id for d in snapshot.deliveries] == ["a", "b"]
    assert commands.get_delivery("c1", "a") == (command("c1"), Delivery("a"))
    assert commands.get_delivery("c1", "zz") is None
    assert commands.get_delivery("nope", "a") is None


def test_mark_delivered_changes_only_pending_deliveries(commands):
    commands.add(command("c1"), [Delivery("a"), Delivery("b"), Delivery("c")])
    assert commands.mark_delivered("c1", ["a", "b"], T0 + 1) == 2
    assert commands.mark_delivered("c1", ["a", "c", "zz"], T0 + 2) == 1
    statuses = {d.agent_id: (d.status, d.delivered_at) for d in commands.get("c1").deliveries}
    assert statuses == {
        "a": (DELIVERED, T0 + 1),
        "b": (DELIVERED, T0 + 1),
        "c": (DELIVERED, T0 + 2),
    }
    assert commands.mark_delivered("nope", ["a"], T0) == 0


def test_mark_delivered_counts_an_agent_listed_twice_once(commands):
    commands.add(command("c1"), [Delivery("a"), Delivery("b")])
    assert commands.mark_delivered("c1", ["a", "b", "a"], T0 + 1) == 2
    assert commands.get_delivery("c1", "a")[1] == Delivery("a", DELIVERED, T0 + 1)


def test_mark_delivered_marks_more_agents_than_one_script_call_takes(commands):
    agents = [f"a{i:04d}" for i in range(2_500)]
    commands.add(command("c1"), [Delivery(a) for a in agents])
    assert commands.mark_delivered("c1", agents, T0 + 1) == 2_500
    assert {d.status for d in commands.get("c1").deliveries} == {DELIVERED}


def test_mark_delivered_keeps_the_time_exactly(commands):
    at = T0 + 0.123456789  # 17 significant digits: Lua's cjson would keep 14
    commands.add(command("c1"), [Delivery("a")])
    commands.mark_delivered("c1", ["a"], at)
    assert commands.get_delivery("c1", "a")[1].delivered_at == at


def test_replace_delivery_is_a_compare_and_set_on_the_status(commands):
    commands.add(command("c1"), [Delivery("a"), Delivery("b")])
    acked = Delivery("a", ACKNOWLEDGED, None, T0 + 3, AckResult(AckStatus.SUCCESS, "ok", {"k": 1}))
    assert commands.replace_delivery("c1", DELIVERED, acked, T0 + 3600) is False
    assert commands.replace_delivery("c1", PENDING, acked, T0 + 3600) is True
    assert commands.replace_delivery("c1", PENDING, acked, T0 + 3600) is False  # two acks
    assert commands.get_delivery("c1", "a")[1] == acked
    assert commands.due_purges(T0 + 10_000, 10) == []  # "b" is still open
    expired = Delivery("b", EXPIRED)
    assert commands.replace_delivery("c1", PENDING, expired, T0 + 3660) is True
    assert commands.due_purges(T0 + 3659, 10) == []
    assert commands.due_purges(T0 + 3660, 10) == ["c1"]


def test_acknowledge_records_the_result_once_exactly_as_given(commands):
    commands.add(command("c1"), [Delivery("a"), Delivery("b")])
    delivered_at = T0 + 0.123456789012  # more digits than Lua's own number formatting keeps
    delivered = Delivery("a", DELIVERED, delivered_at)
    assert commands.replace_delivery("c1", PENDING, delivered, T0 + 3600)
    result = AckResult(AckStatus.SUCCESS, "done \u00e9", {"list": [], "map": {}, "n": 1.5})
    at = T0 + 2.987654321098

    outcome = commands.acknowledge("c1", "a", result, at, T0 + 3600)

    recorded = Delivery("a", ACKNOWLEDGED, delivered_at, at, result)
    assert (outcome.verdict, outcome.command, outcome.delivery) == (
        AckVerdict.RECORDED,
        command("c1"),
        recorded,
    )
    assert commands.get_delivery("c1", "a") == (command("c1"), recorded)
    again = commands.acknowledge("c1", "a", result, at + 1, T0 + 3601)
    assert (again.verdict, again.delivery) == (AckVerdict.REPEATED, recorded)
    assert commands.due_purges(T0 + 10_000, 10) == []  # "b" is still open
    failed = commands.acknowledge("c1", "b", AckResult(AckStatus.FAILURE), at, T0 + 3700)
    assert failed.delivery == Delivery("b", FAILED, None, at, AckResult(AckStatus.FAILURE))
    assert commands.due_purges(T0 + 3699, 10) == []
    assert commands.due_purges(T0 + 3700, 10) == ["c1"]


@pytest.mark.parametrize(
    ("status", "ack", "verdict"),
    [
        (ACKNOWLEDGED, AckStatus.FAILURE, AckVerdict.ALREADY_FINAL),
        (FAILED, AckStatus.SUCCESS, AckVerdict.ALREADY_FINAL),
        (FAILED, AckStatus.FAILURE, AckVerdict.REPEATED),
        (CANCELLED, AckStatus.SUCCESS, AckVerdict.CANCELLED),
        (EXPIRED, AckStatus.SUCCESS, AckVerdict.EXPIRED),
    ],
)
def test_acknowledge_leaves_a_final_delivery_as_it_was(commands, status, ack, verdict):
    commands.add(command("c1"), [Delivery("a")])
    found = Delivery("a", status, acknowledged_at=T0 + 1)
    assert commands.replace_delivery("c1", PENDING, found, T0 + 3600)

    outcome = commands.acknowledge("c1", "a", AckResult(ack), T0 + 2, T0 + 3600)

    assert (outcome.verdict, outcome.delivery) == (verdict, found)
    assert commands.get_delivery("c1", "a")[1] == found


@pytest.mark.parametrize(
    ("at", "verdict"),
    [(T0 + 59.999, AckVerdict.RECORDED), (T0 + 60, AckVerdict.EXPIRED)],
    ids=["before-the-deadline", "at-the-deadline"],
)
def test_acknowledge_after_the_deadline_is_expired_and_changes_nothing(commands, at, verdict):
    commands.add(command("c1", expires=T0 + 60), [Delivery("a")])
    outcome = commands.acknowledge("c1", "a", AckResult(AckStatus.SUCCESS), at, T0 + 3600)
    assert outcome.verdict is verdict
    stored = commands.get_delivery("c1", "a")[1]
    assert stored.status is (ACKNOWLEDGED if verdict is AckVerdict.RECORDED else PENDING)


def test_acknowledge_of_no_such_delivery_is_none(commands):
    commands.add(command("c1"), [Delivery("a")])
    assert commands.acknowledge("c1", "zz", AckResult(AckStatus.SUCCESS), T0, T0) is None
    assert commands.acknowledge("nope", "a", AckResult(AckStatus.SUCCESS), T0, T0) is None
    assert commands.get_delivery("c1", "a")[1] == Delivery("a")


def test_for_agent_newest_first_filtered_by_status(commands):
    commands.add(command("c1", created=T0), [Delivery("a")])
    commands.add(command("c2", created=T0 + 1), [Delivery("a"), Delivery("b")])
    commands.add(command("c3", created=T0 + 2), [Delivery("b")])
    commands.mark_delivered("c2", ["a"], T0 + 1)
    assert [c.id for c, _ in commands.for_agent("a")] == ["c2", "c1"]
    assert [c.id for c, _ in commands.for_agent("a", {PENDING})] == ["c1"]
    assert [(c.id, d.status) for c, d in commands.for_agent("a", {DELIVERED})] == [
        ("c2", DELIVERED)
    ]
    assert commands.for_agent("nobody") == []


def test_for_agent_since_reads_only_commands_created_from_then_on(commands):
    for number in range(1, 5):
        commands.add(command(f"c{number}", created=T0 + number), [Delivery("a")])
    assert [c.id for c, _ in commands.for_agent("a", since=T0 + 3)] == ["c4", "c3"]
    assert [c.id for c, _ in commands.for_agent("a", {PENDING}, since=T0 + 5)] == []


def test_created_by_and_deliver_on_connect_are_kept(commands):
    sent = dataclasses.replace(command("c1"), created_by="alice", deliver_on_connect=True)
    commands.add(sent, [Delivery("a")])
    assert commands.get("c1").command == sent
    assert commands.add(command("c2"), [Delivery("a")]) is None
    assert commands.get("c2").command == command("c2")


def test_due_expiries_until_marked_done(commands):
    commands.add(command("c1", expires=T0 + 60), [Delivery("a")])
    commands.add(command("c2", expires=T0 + 30), [Delivery("a")])
    assert commands.due_expiries(T0 + 29, 10) == []
    assert [c.id for c in commands.due_expiries(T0 + 60, 10)] == ["c2", "c1"]
    assert [c.id for c in commands.due_expiries(T0 + 60, 1)] == ["c2"]
    commands.expiry_done("c2")
    assert [c.id for c in commands.due_expiries(T0 + 60, 10)] == ["c1"]


def test_purge_forgets_the_command_and_its_deliveries(commands):
    commands.add(command("c1"), [Delivery("a")])
    commands.replace_delivery("c1", PENDING, Delivery("a", EXPIRED), T0 + 100)
    assert commands.due_purges(T0 + 100, 10) == ["c1"]
    commands.purge("c1")
    assert commands.get("c1") is None
    assert commands.get_delivery("c1", "a") is None
    assert commands.for_agent("a") == []
    assert commands.due_purges(T0 + 100, 10) == []


@pytest.mark.redis
def test_redis_unexpired_ids_lists_commands_inside_their_expiry_window(redis_server):
    redis_server.flush()
    client = connect(redis_server.url)
    try:
        store = RedisCommandStore(client)
        store.add(command("old", expires=T0 + 10), [Delivery("a")])
        store.add(command("new", expires=T0 + 60), [Delivery("a")])
        assert store.unexpired_ids(T0 + 20, 10) == ["new"]
        assert store.unexpired_ids(T0, 1) == ["old"]
        assert store.unexpired_ids(T0 + 60, 10) == []
    finally:
        client.connection_pool.disconnect()


def test_stored_records_round_trip_exactly(agents):
    odd = agent("a1", at=T0 + 0.1, version=None, route_ids=[], capabilities={"x": [1, "ü"]})
    agents.register(odd)
    assert dataclasses.asdict(agents.get("a1")) == dataclasses.asdict(odd)


# Fleet operations: delete, the DEAD index, cancel ------------------------------------------


def dead_agent(agents, agent_id: str, dead_at: float, group: str = "g") -> None:
    """Register the agent and move it LIVE -> STALE -> DEAD, DEAD at ``dead_at``."""
    agents.register(agent(agent_id, group, at=dead_at - 390))
    assert agents.transition(agent_id, dead_at - 300, STALE, dead_at - 300, dead_at)
    assert agents.transition(agent_id, dead_at, DEAD, dead_at, None)


def test_delete_removes_the_agent_from_every_read_and_count(agents):
    agents.register(agent("a1", "g"))
    agents.register(agent("a2", "g"))
    dead_agent(agents, "a3", T0 + 400, "h")
    removed = agents.delete("a1")
    assert removed is not None and removed.id == "a1" and removed.group == "g"
    assert agents.get("a1") is None
    assert agents.get_many(["a1", "a2"])[0] is None
    assert listed(agents) == ["a2", "a3"]
    assert agents.live_ids() == ["a2"]
    assert agents.live_ids("g") == ["a2"]
    assert agents.due(T0 + 10_000, 10) == [agents.get("a2")]  # no deadline left for a1
    assert agents.counts() == {LIVE: 1, STALE: 0, DEAD: 1}
    assert agents.heartbeat("a1", T0 + 1, T0 + 91) is UNKNOWN
    assert agents.delete("a1") is None  # once only
    assert agents.delete("nobody") is None
    agents.delete("a3")
    assert agents.counts() == {LIVE: 1, STALE: 0, DEAD: 0}
    assert agents.dead(T0 + 10_000, 10) == []
    assert listed(agents, group="h") == []


def test_a_deleted_id_registers_anew_with_a_higher_generation(agents):
    """A token of the deleted agent names its generation: the new agent never has it."""
    agents.register(agent("a1", generation=GEN))
    agents.register(agent("a1", generation=GEN))  # GEN + 1, as in the same millisecond
    agents.delete("a1")
    again, created = agents.register(agent("a1", generation=GEN))
    assert created is True
    assert again.generation == GEN + 2
    assert agents.heartbeat("a1", T0 + 1, T0 + 91, GEN + 1) is SUPERSEDED
    assert agents.register(agent("other", generation=GEN))[0].generation > GEN + 1


def test_dead_lists_dead_agents_by_when_they_went_dead(agents):
    dead_agent(agents, "late", T0 + 500)
    dead_agent(agents, "early", T0 + 400)
    dead_agent(agents, "middle", T0 + 450)
    agents.register(agent("alive"))
    assert agents.dead(T0 + 399, 10) == []
    assert agents.dead(T0 + 450, 10) == ["early", "middle"]
    assert agents.dead(T0 + 10_000, 2) == ["early", "middle"]
    # A heartbeat or a registration takes an agent out of the DEAD index.
    agents.heartbeat("early", T0 + 600, T0 + 690)
    agents.register(agent("middle", at=T0 + 600))
    assert agents.dead(T0 + 10_000, 10) == ["late"]
    # Going DEAD again puts it back, at its new time.
    assert agents.transition("early", T0 + 690, STALE, T0 + 690, T0 + 990)
    assert agents.transition("early", T0 + 990, DEAD, T0 + 990, None)
    assert agents.dead(T0 + 10_000, 10) == ["late", "early"]


def test_a_prune_delete_is_a_compare_and_set_on_dead_since(agents):
    dead_agent(agents, "a1", T0 + 400)
    agents.register(agent("live"))
    assert agents.delete("a1", dead_before=T0 + 399) is None  # not dead long enough
    assert agents.delete("live", dead_before=T0 + 10_000) is None  # not DEAD
    assert agents.get("live") is not None
    assert agents.delete("a1", dead_before=T0 + 400).id == "a1"
    assert agents.delete("a1", dead_before=T0 + 400) is None
    assert agents.dead(T0 + 10_000, 10) == []


def test_get_command_reads_the_command_alone(commands):
    commands.add(command("c1"), [Delivery("a")])
    assert commands.get_command("c1") == command("c1")
    assert commands.get_command("nope") is None


def test_cancel_deliveries_cancels_only_what_is_not_final_and_once(commands):
    commands.add(command("c1"), [Delivery("a"), Delivery("b"), Delivery("c"), Delivery("d")])
    commands.mark_delivered("c1", ["b"], T0 + 1)
    acked = Delivery("c", ACKNOWLEDGED, None, T0 + 2, AckResult(AckStatus.SUCCESS))
    commands.replace_delivery("c1", PENDING, acked, T0 + 3600)
    cancelled = commands.cancel_deliveries("c1", ["a", "b", "c", "zz"], T0 + 3605)
    assert sorted(cancelled, key=lambda d: d.agent_id) == [
        Delivery("a", CANCELLED),
        Delivery("b", CANCELLED, delivered_at=T0 + 1),
    ]
    assert commands.cancel_deliveries("c1", ["a", "b", "c"], T0 + 3605) == []  # once only
    statuses = {d.agent_id: d.status for d in commands.get("c1").deliveries}
    assert statuses == {"a": CANCELLED, "b": CANCELLED, "c": ACKNOWLEDGED, "d": PENDING}
    # A cancelled delivery is final: no ack, expiry or delivery mark moves it.
    assert commands.replace_delivery("c1", PENDING, Delivery("a", FAILED), T0 + 9) is False
    assert commands.mark_delivered("c1", ["a"], T0 + 9) == 0
    assert commands.cancel_deliveries("nope", ["a"], T0) == []


def test_cancelling_the_last_open_delivery_schedules_the_purge(commands):
    commands.add(command("c1"), [Delivery("a"), Delivery("b")])
    commands.cancel_deliveries("c1", ["a"], T0 + 100)
    assert commands.due_purges(T0 + 10_000, 10) == []  # "b" is still open
    assert [c.id for c in commands.due_expiries(T0 + 60, 10)] == ["c1"]
    commands.cancel_deliveries("c1", ["b"], T0 + 200)
    assert commands.due_expiries(T0 + 60, 10) == []  # nothing left to expire
    assert commands.due_purges(T0 + 199, 10) == []
    assert commands.due_purges(T0 + 200, 10) == ["c1"]


def test_cancel_deliveries_in_batches_larger_than_one_script_call(commands):
    ids = [f"a{n:05d}" for n in range(2500)]
    commands.add(command("c1"), [Delivery(agent_id) for agent_id in ids])
    assert len(commands.cancel_deliveries("c1", ids, T0 + 100)) == 2500
    assert commands.get("c1").summary()["cancelled"] == 2500
    assert commands.due_purges(T0 + 100, 10) == ["c1"]


@pytest.mark.redis
def test_redis_indexes_dead_agents_written_before_the_index_existed(redis_server):
    """DEAD agents stored by an older version (no ``ar:dead-since``) can be pruned too."""
    redis_server.flush()
    client = connect(redis_server.url)
    try:
        store = RedisAgentStore(client)
        dead_agent(store, "old-1", T0 + 400)
        dead_agent(store, "old-2", T0 + 500)
        client.delete("ar:dead-since")  # as an older version left it
        fresh = RedisAgentStore(client)
        assert fresh.dead(T0 + 10_000, 10) == ["old-1", "old-2"]
        assert fresh.delete("old-1", dead_before=T0 + 10_000) is not None
    finally:
        client.connection_pool.disconnect()


# Outage grace: postponed deadlines, noted sweeps, remembered outages -------------------------


def test_postpone_is_a_compare_and_set_on_the_deadline(agents):
    agents.register(agent("a1", deadline=T0 + 90))
    assert agents.postpone("a1", T0 + 80, T0 + 200, T0 + 110) is False
    assert agents.postpone("a1", T0 + 90, T0 + 200, T0 + 110) is True
    record = agents.get("a1")
    assert (record.state, record.deadline, record.grace_through) == (LIVE, T0 + 200, T0 + 110)
    assert agents.due(T0 + 199, 10) == []
    assert [a.id for a in agents.due(T0 + 200, 10)] == ["a1"]
    assert agents.postpone("nobody", T0, T0 + 1, T0) is False
    assert agents.due(T0 + 10_000, 10) == [record]


def test_a_heartbeat_and_a_registration_clear_the_grace_mark(agents):
    agents.register(agent("a1", deadline=T0 + 90))
    agents.postpone("a1", T0 + 90, T0 + 200, T0 + 110)
    agents.heartbeat("a1", T0 + 150, T0 + 240)
    assert (agents.get("a1").deadline, agents.get("a1").grace_through) == (T0 + 240, None)
    agents.postpone("a1", T0 + 240, T0 + 300, T0 + 110)
    agents.register(agent("a1", at=T0 + 160))
    assert agents.get("a1").grace_through is None


def test_a_deleted_agent_cannot_be_postponed_back_into_the_index(agents):
    agents.register(agent("a1", deadline=T0 + 90))
    agents.postpone("a1", T0 + 90, T0 + 200, T0 + 110)
    agents.delete("a1")
    assert agents.postpone("a1", T0 + 200, T0 + 300, T0 + 110) is False
    assert agents.due(T0 + 10_000, 10) == []
    assert agents.get("a1") is None


def test_note_sweep_finds_a_gap_longer_than_outage_after_once(agents):
    assert agents.note_sweep(T0, 2.0, 10) == SweepNote(None, [])
    assert agents.note_sweep(T0 + 2, 2.0, 10) == SweepNote(None, [])  # 2 s is no outage
    found = agents.note_sweep(T0 + 10, 2.0, 10)
    assert found == SweepNote(Outage(T0 + 2, T0 + 10), [Outage(T0 + 2, T0 + 10)])
    assert agents.note_sweep(T0 + 11, 2.0, 10) == SweepNote(None, [Outage(T0 + 2, T0 + 10)])


def test_note_sweep_never_moves_the_noted_time_back(agents):
    agents.note_sweep(T0 + 10, 2.0, 10)
    assert agents.note_sweep(T0 + 5, 2.0, 10).found is None  # a clock behind
    assert agents.note_sweep(T0 + 11, 2.0, 10).found is None  # 1 s after T0 + 10


def test_outages_are_kept_oldest_first_up_to_keep_and_forgotten_by_their_end(agents):
    now = T0
    agents.note_sweep(now, 2.0, 3)
    for _ in range(5):
        now += 10
        agents.note_sweep(now, 2.0, 3)
    recent = agents.note_sweep(now + 1, 2.0, 3).recent
    assert recent == [Outage(T0 + 20, T0 + 30), Outage(T0 + 30, T0 + 40), Outage(T0 + 40, T0 + 50)]
    agents.forget_outages(T0 + 40)
    assert agents.note_sweep(now + 2, 2.0, 3).recent == [Outage(T0 + 40, T0 + 50)]
    agents.forget_outages(T0 + 100)
    assert agents.note_sweep(now + 3, 2.0, 3).recent == []


def test_redis_two_processes_noting_the_first_sweep_after_an_outage_record_it_once(
    redis_server,
):
    """Every worker's first sweep after a Redis outage notes at about the same moment."""
    redis_server.flush()
    clients = [connect(redis_server.url) for _ in range(8)]
    try:
        stores = [RedisAgentStore(client) for client in clients]
        stores[0].note_sweep(T0, 2.0, 10)
        with ThreadPoolExecutor(len(stores)) as pool:
            notes = list(pool.map(lambda s: s.note_sweep(T0 + 10, 2.0, 10), stores))
        assert [note.found for note in notes].count(None) == len(stores) - 1
        assert {tuple(note.recent) for note in notes} == {(Outage(T0, T0 + 10),)}
    finally:
        for client in clients:
            client.connection_pool.disconnect()


def test_redis_ignores_a_note_that_reached_it_after_its_caller_gave_up(redis_server):
    """A sweep's note sent to a paused Redis runs when Redis resumes, after its caller's
    reply timeout: it must not take the outage from the sweep that will find it."""
    redis_server.flush()
    client = connect(redis_server.url)
    try:
        store = RedisAgentStore(client)
        real = time.time()
        client.set(LAST_SWEEP, f"{real - 10!r} 0.0")  # noted 10 s ago, on time
        late = store.note_sweep(real - 4, 2.0, 10)  # sent 4 s ago, arriving only now
        assert late == SweepNote(None, [])
        found = store.note_sweep(real, 2.0, 10).found
        assert found == Outage(real - 10, real)
    finally:
        client.connection_pool.disconnect()


def test_redis_dates_a_note_held_up_by_a_paused_redis_when_it_arrived(redis_server):
    """A sweep's note sent while Redis is paused reaches it when Redis resumes: the outage
    ended then, not when that sweep began (else the next sweep would find a second one)."""
    redis_server.flush()
    client = connect(redis_server.url)
    try:
        store = RedisAgentStore(client)
        real = time.time()
        client.set(LAST_SWEEP, f"{real - 10!r} 0.0")  # noted 10 s ago, on time
        found = store.note_sweep(real - 0.7, 1.0, 10).found  # sent 0.7 s ago, arriving now
        assert found is not None
        assert found.started == real - 10
        assert real <= found.ended < real + 0.5
        assert store.note_sweep(found.ended + 0.5, 1.0, 10).found is None
    finally:
        client.connection_pool.disconnect()

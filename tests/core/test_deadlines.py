"""DeadlineIndex: an ordered index of deadlines with lazy deletion."""

from __future__ import annotations

import random

from agent_registry.stores.deadlines import DeadlineIndex

BIG = 10**9


def test_an_empty_index_has_nothing_due():
    index: DeadlineIndex[str] = DeadlineIndex()

    assert len(index) == 0
    assert index.due(now=BIG, limit=10) == []


def test_due_returns_keys_at_or_before_now_earliest_first():
    index: DeadlineIndex[str] = DeadlineIndex()
    index.set("c", 30.0)
    index.set("a", 10.0)
    index.set("d", 40.0)
    index.set("b", 20.0)

    assert index.due(now=9.999, limit=10) == []
    assert index.due(now=10.0, limit=10) == [("a", 10.0)]
    assert index.due(now=30.0, limit=10) == [("a", 10.0), ("b", 20.0), ("c", 30.0)]
    assert len(index) == 4


def test_due_keys_stay_indexed_until_moved_or_discarded():
    index: DeadlineIndex[str] = DeadlineIndex()
    index.set("a", 1.0)
    index.set("b", 2.0)

    first = index.due(now=5.0, limit=10)
    second = index.due(now=5.0, limit=10)

    assert first == second == [("a", 1.0), ("b", 2.0)]


def test_equal_deadlines_are_all_returned():
    index: DeadlineIndex[str] = DeadlineIndex()
    for key in ["k3", "k1", "k2"]:
        index.set(key, 7.0)

    assert sorted(index.due(now=7.0, limit=10)) == [("k1", 7.0), ("k2", 7.0), ("k3", 7.0)]


def test_moving_a_deadline_later_hides_the_old_one():
    index: DeadlineIndex[str] = DeadlineIndex()
    index.set("a", 10.0)
    index.set("b", 20.0)

    index.set("a", 100.0)

    assert len(index) == 2
    assert index.due(now=50.0, limit=10) == [("b", 20.0)]
    assert index.due(now=100.0, limit=10) == [("b", 20.0), ("a", 100.0)]


def test_moving_a_deadline_earlier_takes_effect():
    index: DeadlineIndex[str] = DeadlineIndex()
    index.set("a", 100.0)
    index.set("b", 50.0)

    index.set("a", 5.0)

    assert index.due(now=60.0, limit=10) == [("a", 5.0), ("b", 50.0)]


def test_moving_back_to_an_old_deadline_reports_the_key_once():
    index: DeadlineIndex[str] = DeadlineIndex()
    index.set("a", 10.0)
    index.set("a", 20.0)
    index.set("a", 10.0)

    assert index.due(now=30.0, limit=10) == [("a", 10.0)]
    assert index.due(now=30.0, limit=10) == [("a", 10.0)]


def test_setting_the_same_deadline_twice_reports_the_key_once():
    index: DeadlineIndex[str] = DeadlineIndex()
    index.set("a", 10.0)
    index.set("a", 10.0)
    index.set("b", 11.0)

    assert len(index) == 2
    assert index.due(now=20.0, limit=10) == [("a", 10.0), ("b", 11.0)]
    assert index.due(now=20.0, limit=10) == [("a", 10.0), ("b", 11.0)]


def test_duplicates_do_not_use_up_the_limit():
    index: DeadlineIndex[str] = DeadlineIndex()
    for _ in range(5):
        index.set("a", 1.0)
    index.set("b", 2.0)

    assert index.due(now=10.0, limit=2) == [("a", 1.0), ("b", 2.0)]


def test_discard_removes_a_key():
    index: DeadlineIndex[str] = DeadlineIndex()
    index.set("a", 1.0)
    index.set("b", 2.0)

    index.discard("a")

    assert len(index) == 1
    assert index.due(now=10.0, limit=10) == [("b", 2.0)]


def test_discard_of_an_unknown_key_is_harmless():
    index: DeadlineIndex[str] = DeadlineIndex()
    index.set("a", 1.0)

    index.discard("ghost")
    index.discard("ghost")

    assert index.due(now=10.0, limit=10) == [("a", 1.0)]


def test_a_discarded_key_can_be_set_again():
    index: DeadlineIndex[str] = DeadlineIndex()
    index.set("a", 1.0)
    index.discard("a")
    index.set("a", 1.0)

    assert index.due(now=10.0, limit=10) == [("a", 1.0)]
    index.discard("a")
    index.set("a", 3.0)
    assert index.due(now=2.0, limit=10) == []
    assert index.due(now=3.0, limit=10) == [("a", 3.0)]


def test_limit_returns_the_earliest_and_keeps_the_rest_for_later():
    index: DeadlineIndex[int] = DeadlineIndex()
    for key in [5, 3, 9, 1, 7]:
        index.set(key, float(key))

    assert index.due(now=100.0, limit=2) == [(1, 1.0), (3, 3.0)]
    assert index.due(now=100.0, limit=10) == [(1, 1.0), (3, 3.0), (5, 5.0), (7, 7.0), (9, 9.0)]
    index.discard(1)
    index.discard(3)
    assert index.due(now=100.0, limit=2) == [(5, 5.0), (7, 7.0)]


def test_compaction_keeps_answers_correct_after_many_moves():
    rng = random.Random(20260311)
    index: DeadlineIndex[str] = DeadlineIndex()
    expected: dict[str, float] = {}
    # keys set once and never touched again must survive every compaction
    for n in range(200):
        expected[f"still-{n:03d}"] = n * 5 + 0.5
        index.set(f"still-{n:03d}", n * 5 + 0.5)
    hot = [f"hot-{n}" for n in range(20)]
    for round_number in range(30_000):
        key = rng.choice(hot)
        if round_number % 97 == 0:
            index.discard(key)
            expected.pop(key, None)
        else:
            deadline = float(rng.randrange(0, 1000))
            index.set(key, deadline)
            expected[key] = deadline

    assert len(index) == len(expected)
    # memory stays proportional to the number of keys, not to the number of moves
    assert len(index._heap) <= 2 * len(index) + 1024 + 1
    for now in (0.0, 250.0, 500.0, 999.0, float(BIG)):
        wanted = sorted(
            ((key, when) for key, when in expected.items() if when <= now),
            key=lambda pair: (pair[1], pair[0]),
        )
        assert index.due(now=now, limit=1000) == wanted


def test_many_moves_of_one_key_leave_only_its_latest_deadline():
    index: DeadlineIndex[str] = DeadlineIndex()
    for step in range(5000):
        index.set("hot", float(step))
    index.set("cold", 2500.5)

    assert index.due(now=BIG, limit=10) == [("cold", 2500.5), ("hot", 4999.0)]
    assert index.due(now=4998.0, limit=10) == [("cold", 2500.5)]

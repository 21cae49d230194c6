"""The pacer: at most one send per key per interval, and a marked key is never lost."""

from __future__ import annotations

from agent_registry.streams.pacer import Pacer


def test_a_first_change_is_sent_at_once_and_a_burst_after_it_once_per_interval():
    pacer: Pacer[str] = Pacer(0.25)
    pacer.mark("c1")
    assert pacer.take(10.0) == ["c1"]
    assert pacer.wait(10.0) is None  # nothing marked

    for _ in range(100):  # a burst: the latest state will be read when it is taken
        pacer.mark("c1")
    assert pacer.take(10.1) == []
    assert abs(pacer.wait(10.1) - 0.15) < 1e-9
    assert pacer.take(10.25) == ["c1"]
    assert pacer.take(10.3) == [] and len(pacer) == 0


def test_keys_are_paced_each_on_its_own():
    pacer: Pacer[str] = Pacer(0.25)
    pacer.mark("a")
    assert pacer.take(0.0) == ["a"]
    pacer.mark("a")
    pacer.mark("b")
    assert pacer.take(0.1) == ["b"]
    assert abs(pacer.wait(0.1) - 0.15) < 1e-9
    assert pacer.take(0.25) == ["a"]


def test_a_key_quiet_for_an_interval_is_sent_at_once_again():
    pacer: Pacer[str] = Pacer(0.25)
    pacer.mark("a")
    pacer.take(0.0)
    pacer.mark("a")
    assert pacer.wait(5.0) == 0.0
    assert pacer.take(5.0) == ["a"]


def test_clear_forgets_the_marks_but_keeps_the_pace():
    pacer: Pacer[str] = Pacer(0.25)
    pacer.mark("a")
    pacer.take(0.0)
    pacer.mark("a")
    pacer.clear()
    assert pacer.wait(0.1) is None
    pacer.mark("a")
    assert pacer.take(0.1) == []
    assert pacer.take(0.3) == ["a"]


def test_marking_says_whether_the_key_was_not_marked_yet():
    pacer: Pacer[str] = Pacer(0.25)
    assert pacer.mark("a") is True
    assert pacer.mark("a") is False  # already counted in wait(): nothing to wake for
    pacer.take(0.0)
    assert pacer.mark("a") is True

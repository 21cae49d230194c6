"""The per-stream queue: bounded, FIFO, one reader that waits with a timeout."""

from __future__ import annotations

import time

import gevent
import pytest

from agent_registry.streams.stream_queue import Empty, Full, StreamQueue


def test_items_come_out_in_order_and_the_bound_holds():
    queue = StreamQueue(2)
    queue.put_nowait("a")
    queue.put_nowait("b")
    with pytest.raises(Full):
        queue.put_nowait("c")
    assert len(queue) == 2
    assert queue.get(timeout=1) == "a"
    assert queue.get_nowait() == "b"
    assert queue.empty()
    with pytest.raises(Empty):
        queue.get_nowait()


def test_a_waiting_reader_times_out_with_empty():
    queue = StreamQueue(4)
    started = time.monotonic()
    with pytest.raises(Empty):
        queue.get(timeout=0.05)
    assert 0.04 <= time.monotonic() - started < 1.0


def test_a_put_from_another_greenlet_wakes_the_reader_before_the_timeout():
    queue = StreamQueue(4)
    gevent.spawn_later(0.02, queue.put_nowait, "event")
    started = time.monotonic()
    assert queue.get(timeout=5) == "event"
    assert time.monotonic() - started < 1.0


def test_a_reader_that_timed_out_still_gets_what_arrives_next():
    queue = StreamQueue(4)
    with pytest.raises(Empty):
        queue.get(timeout=0.01)
    producer = gevent.spawn(queue.put_nowait, "late")
    assert queue.get(timeout=1) == "late"
    producer.join()


def test_a_killed_reader_leaves_no_waiter_behind():
    queue = StreamQueue(4)
    reader = gevent.spawn(queue.get, 5)
    gevent.sleep(0)  # the reader runs and parks on the empty queue
    reader.kill()
    queue.put_nowait("next")  # must not try to wake the dead reader
    gevent.sleep(0)
    assert queue.get_nowait() == "next"

"""The stream hub of one process: open, replace, deliver, end, and the repeated-id window."""

from __future__ import annotations

from agent_registry.core.ports import OpenStream
from agent_registry.streams.hub import _RECENT_IDS, END, StreamHub, Subscription
from harness.clock import FakeClock


class Recorder:
    """A StreamListener that records what the hub told it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def opened(self, stream: OpenStream) -> None:
        self.events.append(("opened", stream.token))

    def closed(self, stream: OpenStream) -> None:
        self.events.append(("closed", stream.token))


def drain(subscription: Subscription) -> list:
    items = []
    while not subscription.queue.empty():
        items.append(subscription.queue.get_nowait())
    return items


def test_open_registers_and_tells_the_listener_close_forgets():
    listener = Recorder()
    hub = StreamHub(8, listener)
    stream = hub.open("a1")
    assert len(hub) == 1
    assert hub.is_connected("a1")
    assert hub.connected(["a1", "a2"]) == {"a1"}
    hub.close(stream)
    assert len(hub) == 0
    assert listener.events == [("opened", stream.token), ("closed", stream.token)]


def test_a_new_stream_ends_the_old_one_whose_close_leaves_the_new_alone():
    listener = Recorder()
    hub = StreamHub(8, listener)
    old = hub.open("a1")
    new = hub.open("a1")
    assert old.token != new.token
    assert old.closed and drain(old) == [END]
    hub.close(old)
    assert hub.subscriptions() == [new]
    assert listener.events == [("opened", old.token), ("opened", new.token)]


def test_deliver_queues_the_same_frame_for_streams_opened_in_time():
    clock = FakeClock()
    hub = StreamHub(8, clock=clock)
    early = hub.open("a1")
    clock.advance(1)
    late = hub.open("a2")
    assert hub.deliver(["a1", "a2", "nobody"], "c1", b"frame") == 2
    assert hub.deliver(["a1", "a2"], "c2", b"other", opened_by=clock.now - 0.5) == 1
    assert drain(early) == [("c1", b"frame"), ("c2", b"other")]
    assert drain(late) == [("c1", b"frame")]
    hub.close(early)
    hub.close(late)


def test_end_with_a_token_ends_only_that_stream():
    hub = StreamHub(8)
    stream = hub.open("a1")
    hub.end("a1", token="someone-else")
    assert hub.subscriptions() == [stream]
    assert drain(stream) == []
    hub.end("a1", token=stream.token)
    assert stream.closed
    hub.close(stream)


def test_end_all_ends_open_streams_and_every_stream_opened_later():
    hub = StreamHub(8)
    first = hub.open("a1")
    hub.end_all()
    assert first.closed
    later = hub.open("a2")
    assert later.closed
    assert len(hub) == 1  # the later one was never registered
    hub.close(first)


def test_a_full_queue_ends_the_stream():
    hub = StreamHub(2)
    stream = hub.open("a1")
    assert hub.deliver(["a1"], "c1", b"1") == 1
    assert hub.deliver(["a1"], "c2", b"2") == 1
    assert hub.deliver(["a1"], "c3", b"3") == 0
    assert stream.closed
    assert hub.deliver(["a1"], "c4", b"4") == 0
    hub.close(stream)


def test_a_command_offered_again_within_the_recent_window_is_written_once():
    """A bus catch-up re-announces PENDING commands; the last 16 distinct ids per stream
    are remembered, so a repeat within them is not written twice, an older one is."""
    assert _RECENT_IDS == 16
    hub = StreamHub(100)
    stream = hub.open("a1")
    ids = [f"c{n:02d}" for n in range(_RECENT_IDS + 1)]
    for command_id in ids:
        hub.deliver(["a1"], command_id, b"x")
    hub.deliver(["a1"], ids[-_RECENT_IDS], b"x")  # the oldest id still remembered
    assert [item[0] for item in drain(stream)] == ids
    hub.deliver(["a1"], ids[0], b"x")  # pushed out of the window by the 17th id
    assert [item[0] for item in drain(stream)] == [ids[0]]
    hub.close(stream)


def test_connected_count_is_the_number_of_agents_streaming_here():
    hub = StreamHub(8)
    assert hub.connected_count() == 0
    old = hub.open("a1")
    hub.open("a2")
    new = hub.open("a1")  # replaces the old stream: still one agent
    assert hub.connected_count() == 2
    hub.close(old)
    assert hub.connected_count() == 2
    hub.close(new)
    assert hub.connected_count() == 1
    hub.end_all()
    hub.close(hub.subscriptions()[0])
    assert hub.connected_count() == 0


def test_supersede_ends_only_a_stream_opened_with_an_older_generation():
    hub = StreamHub(4)
    older = hub.open("a", generation=5)
    hub.supersede("a", 5)
    assert not older.closed
    hub.supersede("a", 6)
    assert older.closed
    untracked = hub.open("b")  # auth off: no generation, never superseded
    hub.supersede("b", 99)
    assert not untracked.closed
    for subscription in (older, untracked):
        hub.close(subscription)

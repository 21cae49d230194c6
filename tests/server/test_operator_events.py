"""OperatorEvents' flusher is woken only by what it has not noted yet.

With Redis a process announces every change to the others, operator streams or not, so
each ack of a fan-out tells it that the command changed. The command is announced at most
4 times a second; the acks in between must not each wake the flusher, which would find
nothing due and sleep again (about 7 us of CPU per ack, measured in a scratch script).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gevent
import pytest

from agent_registry.core.models import Command, CommandType, Delivery, Target, TargetKind
from agent_registry.server.operator_events import OperatorEvents
from agent_registry.stores.memory import MemoryAgentStore, MemoryCommandStore
from agent_registry.streams.hub import StreamHub
from agent_registry.streams.operator_hub import OperatorHub


class Relay:
    def __init__(self) -> None:
        self.notices: list[dict[str, Any]] = []

    def announce_fleet(self, notice: dict[str, Any]) -> None:
        self.notices.append(notice)

    def relay_fleet_to(self, notices: object) -> None:
        """The test hands nothing in."""


class CountedFlushes(OperatorEvents):
    flushes = 0

    def _flush(self) -> float | None:
        self.flushes += 1
        return super()._flush()


@pytest.fixture
def now() -> list[float]:
    return [100.0]


@pytest.fixture
def publishing(now: list[float]) -> Iterator[tuple[CountedFlushes, Relay]]:
    """A process that announces (Redis) and has no operator stream of its own."""
    events = CountedFlushes(
        OperatorHub(64),
        MemoryAgentStore(),
        MemoryCommandStore(),
        StreamHub(64),
        clock=lambda: now[0],
        monotonic=lambda: now[0],
    )
    relay = Relay()
    events.relay = relay
    events.start()
    yield events, relay
    events.stop()


def command(command_id: str) -> Command:
    return Command(command_id, CommandType.DEEP_TRACE, {}, Target(TargetKind.ALL), 0.0, 60.0)


def test_the_acks_of_one_command_wake_the_flusher_once_per_turn_not_once_each(
    publishing: tuple[CountedFlushes, Relay],
) -> None:
    events, relay = publishing
    c1 = command("c1")
    events.finished(c1, Delivery("a-0"))
    gevent.sleep(0)
    assert relay.notices == [{"commands": ["c1"]}]
    events.finished(c1, Delivery("a-1"))  # news: unmarked since it was announced
    gevent.sleep(0)
    flushes = events.flushes

    for i in range(2, 200):  # within the command's interval: it waits its turn
        events.finished(c1, Delivery(f"a-{i}"))
        gevent.sleep(0)
    assert events.flushes == flushes
    assert relay.notices == [{"commands": ["c1"]}]

    events.finished(command("c2"), Delivery("a-0"))  # news: another command
    gevent.sleep(0)
    assert events.flushes == flushes + 1
    assert relay.notices[-1] == {"commands": ["c2"]}


def test_a_change_marked_while_waiting_its_turn_is_announced_at_that_turn(
    publishing: tuple[CountedFlushes, Relay], now: list[float]
) -> None:
    events, relay = publishing
    c1 = command("c1")
    events.finished(c1, Delivery("a-0"))
    gevent.sleep(0)
    events.finished(c1, Delivery("a-1"))  # not news: it wakes nothing, and is not lost
    now[0] += 0.25  # the flusher's own wait (0.25 s) ends on the real clock
    with gevent.Timeout(5):
        while len(relay.notices) < 2:
            gevent.sleep(0.01)
    assert relay.notices == [{"commands": ["c1"]}, {"commands": ["c1"]}]

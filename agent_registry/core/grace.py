"""Outage grace: how the server's own outages move the agents' lifecycle deadlines.

API.md § Lifecycle: for an outage from ``T0`` to ``T1``, a LIVE agent whose STALE deadline
had not passed at ``T0`` does not go STALE before ``T1 + staleAfterSeconds``; a STALE agent
whose DEAD deadline had not passed at ``T0`` goes DEAD ``T1 - T0`` later; a deadline that
had passed before ``T0`` is not affected.

An outage is a gap between two lifecycle sweeps (the store noted each one, see
``AgentStore.note_sweep``): a store outage stops every process's sweeps, a paused server
stops its own. Nothing is rewritten when an outage ends: the sweep applies this rule to each
agent as it comes due (O(due)) and postpones those whose deadline moved, marking which
outages are counted in the new deadline (``Agent.grace_through``) so none counts twice.

A heartbeat clears that mark. Its deadline is fresh, yet it may still need an outage that
was already counted: a heartbeat dated during a Redis pause (held up in Redis's socket
buffer or the group commit) can land after the sweep that postponed the agent, with a
deadline earlier than the grace. Counting a LIVE outage again is harmless (it is a max).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..clock import iso
from .models import Agent, AgentState, Outage
from .ports import OutageWatch

log = logging.getLogger(__name__)

# At most this many outages are remembered (the oldest go first). An outage is forgotten
# sooner, once no deadline it can move is left to sweep (``forgotten_by``).
KEPT_OUTAGES = 100


def graced_deadline(agent: Agent, outages: Sequence[Outage], stale_after: float) -> float:
    """The agent's lifecycle deadline once ``outages`` (oldest first) are counted.

    Each outage moves the deadline it finds, so a STALE agent caught by two outages goes
    DEAD the length of both later.
    """
    assert agent.deadline is not None
    deadline = agent.deadline
    for outage in outages:
        if agent.grace_through is not None and outage.ended <= agent.grace_through:
            continue  # already counted in the deadline
        if deadline <= outage.started:
            continue  # it had passed when the outage began: that sweep saw it due
        if agent.state is AgentState.LIVE:
            deadline = max(deadline, outage.ended + stale_after)
        elif agent.state_changed_at <= outage.started:  # STALE all through the outage
            deadline += outage.lasted
    return deadline


def forgotten_by(now: float, stale_after: float, dead_after: float) -> float:
    """A sweep that swept everything due at ``now`` may forget the outages ended by then.

    The deadlines an outage moves are due by ``ended + staleAfter`` (LIVE ones) or
    ``started + deadAfter`` (STALE ones); once those are swept, each moved one is marked
    (``grace_through``) and no other deadline can be moved by it.
    """
    return now - max(stale_after, dead_after)


def announce(outage: Outage, stale_after: float, watch: OutageWatch | None) -> None:
    """Log a found outage: one WARNING (unless this process already logged the store's
    outage, which explains it) and one INFO as grace starts; tell ``watch`` (metrics)."""
    if watch is None or not watch.reported_during(outage):
        log.warning(
            "sweeps did not run for %.1f s (since %s): the store could not be reached or "
            "the server was paused",
            outage.lasted,
            iso(outage.started),
            extra={"outage_seconds": round(outage.lasted, 3)},
        )
    grace_until = outage.ended + stale_after
    log.info(
        "outage grace: an outage of %.1f s is not the agents' fault; LIVE agents have "
        "until %s to heartbeat, STALE ones go DEAD %.1f s later",
        outage.lasted,
        iso(grace_until),
        outage.lasted,
        extra={
            "outage_seconds": round(outage.lasted, 3),
            "outage_started": iso(outage.started),
            "outage_ended": iso(outage.ended),
            "grace_until": iso(grace_until),
        },
    )
    if watch is not None:
        watch.found(outage)

"""Which agents a list asks for, and the keyset-paging loop every store lists them with."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeGuard

from .models import Agent, AgentState


@dataclass(frozen=True, slots=True)
class AgentQuery:
    """Filters (any of ``states``, one ``group``), then keyset paging: the agents after
    the id ``after``, in id (code point) order, at most ``limit`` of them."""

    states: Collection[AgentState] | None = None
    group: str | None = None
    after: str | None = None
    limit: int | None = None

    def matches(self, agent: Agent | None) -> TypeGuard[Agent]:
        return (
            agent is not None
            and (not self.states or agent.state in self.states)
            and (self.group is None or agent.group == self.group)
        )


EVERY_AGENT = AgentQuery()


def ids_after(ids: Sequence[str], cursor: str | None, count: int) -> list[str]:
    """The next ``count`` ids after ``cursor`` (None: from the start) in sorted ``ids``."""
    start = bisect_right(ids, cursor) if cursor is not None else 0
    return list(ids[start : start + count])


def keyset_pages(
    query: AgentQuery,
    size: int,
    ids_after: Callable[[str | None, int], list[str]],
    read: Callable[[list[str]], Iterable[Agent | None]],
) -> Iterator[list[Agent]]:
    """The agents ``query`` asks for, a page at a time, for a store that can give the next
    ``count`` candidate ids after an id (``ids_after``) and read agents by id (``read``).

    Each step reads ``size`` candidates (fewer near ``limit``) and yields those that still
    match: a candidate may have changed, or gone, since its id was found. So a page may
    be shorter than ``size``, but none is empty. The cursor is the last id read, so agents
    added between pages are neither repeated nor skipped.
    """
    cursor, remaining = query.after, query.limit
    while remaining is None or remaining > 0:
        ids = ids_after(cursor, size if remaining is None else min(size, remaining))
        if not ids:
            return
        cursor = ids[-1]
        page = [agent for agent in read(ids) if query.matches(agent)]
        if remaining is not None:
            del page[remaining:]
            remaining -= len(page)
        if page:
            yield page

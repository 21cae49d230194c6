"""A JSON array written in chunks, for answers too big to build at once (the agent list).

Building 100 000 agents' JSON in one go holds a gevent worker for over a second: every other
request of that worker (heartbeats included) waits. Written a page at a time, with a yield to
the other greenlets between pages, the same bytes leave while the worker keeps answering.

The bytes are those Flask's ``jsonify`` writes for the whole list (compact separators, ASCII
escapes, a final newline), so a client cannot tell a streamed answer from a built one except
by its framing (chunked, no ``Content-Length``).

What cannot be known before the first byte: a later page's read may fail (a Redis outage
mid-answer). The status line is gone by then, so the array is not closed: one ``WARNING``
line says so and the connection ends without the chunked terminator. A client sees a
transfer that did not complete (curl: "transfer closed with outstanding read data
remaining"; httpx: ``RemoteProtocolError``), never a short array that looks whole.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import gevent
from gevent import GreenletExit

log = logging.getLogger(__name__)

# How long a chunk waits between pages: more than 0, so that the worker's loop polls for I/O
# first (gevent.sleep(0) may resume this greenlet before the loop cycles: 40 pages of
# 500 agents went by without a heartbeat being read, ~2 s on a busy machine).
_TURN = 0.0001


class AnswerCutShort(GreenletExit):
    """Ends an answer whose status is already sent, by closing its connection.

    gevent's server treats ``GreenletExit`` as an expected end: it logs no traceback (our own
    line said what happened) and, since part of the body is out, closes the connection
    instead of writing anything more.
    """


def members(values: list[Any]) -> bytes:
    """The JSON of ``values`` without its brackets, byte for byte as ``jsonify`` writes it."""
    return json.dumps(values, separators=(",", ":"))[1:-1].encode()


def json_array(first: list[Any], rest: Iterator[list[Any]], what: str) -> Iterator[bytes]:
    """The body of one JSON array: ``first`` (already read, so that what fails before the
    answer starts is an ordinary error answer), then each list ``rest`` yields, each read
    only after the other greenlets had a turn. ``what`` names the answer in the log."""
    written = len(first)
    yield b"[" + members(first)
    while True:
        # Between chunks: a write to a socket with room in its buffer does not yield.
        gevent.sleep(_TURN)
        try:
            values = next(rest, None)
        except Exception as exc:
            log.warning(
                "%s cut short after %d items, the connection is closed without ending the "
                "array: %s",
                what,
                written,
                exc,
            )
            raise AnswerCutShort(what) from exc
        if values is None:
            break
        if values:
            yield (b"," if written else b"") + members(values)
            written += len(values)
    yield b"]\n"

"""``agent-registry watch``: follow the operator event stream, as a live view on a terminal
or as JSON lines (one per event) in a pipe."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TextIO

from rich.console import Console
from rich.live import Live

from ..client.operator_events import OperatorEvent, StreamState
from .fleet_view import FleetView, state_sentence


def watch_json(events: Iterable[OperatorEvent], out: TextIO, err: TextIO) -> None:
    """Each server event as one JSON line on ``out`` (``{"event": "fleet", "data": {...}}``),
    flushed at once; the connection's ups and downs as sentences on ``err``."""
    for event in events:
        if isinstance(event, StreamState):
            err.write(f"watch: {state_sentence(event)}\n")
            err.flush()
            continue
        out.write(json.dumps(event.as_json(), ensure_ascii=False, separators=(",", ":")) + "\n")
        out.flush()


def watch_live(events: Iterable[OperatorEvent], view: FleetView, console: Console) -> None:
    """The live view, redrawn up to 4 times a second, until the events stop (or Ctrl-C)."""
    with Live(view, console=console, refresh_per_second=4, transient=False):
        for event in events:
            view.apply(event)

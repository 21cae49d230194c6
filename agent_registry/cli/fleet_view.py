"""``agent-registry watch`` on a terminal: the fleet as the operator event stream tells it.

``FleetView`` keeps what the screen shows (the counts, the latest agent changes, the
commands in progress, the connection) and renders it with rich. It is fed the SDK's typed
events and does no I/O, so a test renders it on a recording console.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..client.operator_events import (
    AgentEvent,
    CommandEvent,
    FleetEvent,
    OperatorEvent,
    StreamState,
)

RECENT_AGENTS = 12
# Finished commands stay on screen this long, so their outcome can be read.
FINISHED_SHOWN_SECONDS = 30.0
COMMANDS_SHOWN = 10
STATE_STYLES = {"LIVE": "green", "STALE": "yellow", "DEAD": "red"}


def change_of(before: dict[str, Any] | None, agent: dict[str, Any]) -> str:
    """What happened to the agent, in a word or two, from what was known of it before
    (nothing, for the first event of an agent since the view started)."""
    if agent.get("deleted"):
        return "deleted"
    if before is None:
        if agent["state"] != "LIVE":
            return f"went {agent['state']}"
        if agent["connected"]:
            return "connected"
        return "registered" if agent["registeredAt"] == agent["lastHeartbeatAt"] else "changed"
    if before["state"] != agent["state"]:
        return "LIVE again" if agent["state"] == "LIVE" else f"went {agent['state']}"
    if before["connected"] != agent["connected"]:
        return "connected" if agent["connected"] else "disconnected"
    if before["group"] != agent["group"]:
        return f"moved from {before['group']}"
    return "re-registered"


def state_sentence(state: StreamState) -> str:
    """The connection's state in a few words: connected, or why not and what comes next."""
    if state.connected:
        return "connected"
    retry = f"; reconnecting in {state.retry_in:.1f} s" if state.retry_in is not None else ""
    return f"disconnected: {(state.reason or '').rstrip('.')}{retry}"


def in_progress(command: dict[str, Any]) -> bool:
    summary = command["summary"]
    return bool(summary["pending"] or summary["delivered"])


class FleetView:
    def __init__(self, url: str, group: str | None, clock: Callable[[], float] = time.monotonic):
        self.url = url
        self.group = group
        self._clock = clock
        self._lock = threading.Lock()  # rich's refresh thread reads while events arrive
        self.counts: dict[str, int] | None = None
        self.at: str | None = None
        self.connected = False
        self.status = f"connecting to {url} ..."
        self._known: dict[str, dict[str, Any]] = {}
        self.recent: deque[tuple[str, str, dict[str, Any]]] = deque(maxlen=RECENT_AGENTS)
        # command id -> (command, when it was seen finished, or None while in progress)
        self.commands: OrderedDict[str, tuple[dict[str, Any], float | None]] = OrderedDict()

    def apply(self, event: OperatorEvent) -> None:
        with self._lock:
            if isinstance(event, FleetEvent):
                self.counts, self.at = event.counts, event.at
            elif isinstance(event, AgentEvent):
                self._agent(event.agent)
            elif isinstance(event, CommandEvent):
                self._command(event.command)
            else:
                self.connected = event.connected
                attempt = f" (attempt {event.attempt + 1})" if event.attempt > 1 else ""
                self.status = f"{state_sentence(event)} ({self.url}){attempt}"

    def _agent(self, agent: dict[str, Any]) -> None:
        agent_id = agent["id"]
        change = change_of(self._known.get(agent_id), agent)
        if agent.get("deleted"):
            self._known.pop(agent_id, None)
        else:
            self._known[agent_id] = agent
        self.recent.appendleft((time.strftime("%H:%M:%S"), change, agent))

    def _command(self, command: dict[str, Any]) -> None:
        command_id = command["commandId"]
        _, finished = self.commands.get(command_id, (command, None))
        if finished is None and not in_progress(command):
            finished = self._clock()
        self.commands[command_id] = (command, finished)
        self.commands.move_to_end(command_id)
        now = self._clock()
        for key, (_, done) in list(self.commands.items()):
            if done is not None and now - done > FINISHED_SHOWN_SECONDS:
                del self.commands[key]
        while len(self.commands) > 100:
            self.commands.popitem(last=False)

    # -- rendering --

    def __rich__(self) -> RenderableType:
        with self._lock:
            return Group(self._header(), self._agents(), self._commands_table(), self._footer())

    def _header(self) -> RenderableType:
        title = Text("Agent Registry", style="bold")
        if self.group:
            title.append(f"  group {self.group}", style="cyan")
        if self.counts is None:
            return Group(title, Text("fleet: waiting for the first counts", style="dim"))
        line = Text("fleet: ")
        for state in ("LIVE", "STALE", "DEAD"):
            line.append(f"{state} {self.counts.get(state, 0)}", style=STATE_STYLES[state])
            line.append("  ")
        line.append(f"connected {self.counts.get('connected', 0)}", style="bold")
        line.append(f"   (at {self.at})", style="dim")
        return Group(title, line)

    def _agents(self) -> RenderableType:
        table = Table(title="Recent agent changes", title_justify="left", expand=True)
        for column in ("time", "agent", "group", "change", "state", "connected"):
            table.add_column(column)
        for seen, change, agent in self.recent:
            state = agent["state"]
            table.add_row(
                seen,
                agent["id"],
                agent["group"],
                change,
                Text(state, style=STATE_STYLES.get(state, "")),
                "yes" if agent["connected"] else "no",
            )
        if not self.recent:
            table.add_row("-", "no change yet", "", "", "", "")
        return table

    def _commands_table(self) -> RenderableType:
        table = Table(title="Commands", title_justify="left", expand=True)
        for column in ("command", "type", "target", "acked", "failed", "expired", "cancelled"):
            table.add_column(column)
        table.add_column("state")
        table.add_column("by")
        shown = list(self.commands.values())[-COMMANDS_SHOWN:]
        for command, finished in reversed(shown):
            summary = command["summary"]
            target = command["target"]
            table.add_row(
                command["commandId"][-12:],
                command["type"],
                f"{target['kind']} {target['value']}" if target["value"] else target["kind"],
                f"{summary['acknowledged']}/{summary['targets']}",
                str(summary["failed"]),
                str(summary["expired"]),
                str(summary.get("cancelled", 0)),
                command.get("state") or ("done" if finished is not None else "in progress"),
                command.get("createdBy") or "-",
            )
        if not shown:
            table.add_row("-", "no command in progress", "", "", "", "", "", "", "")
        return table

    def _footer(self) -> RenderableType:
        style = "green" if self.connected else "yellow"
        return Text(f"{self.status}   (Ctrl-C to stop)", style=style)

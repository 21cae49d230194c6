"""The ``agent-registry`` command: run the server, inspect agents, send commands, watch the
fleet, simulate.

Tables for people by default, ``--json`` for scripts. Errors are one sentence on stderr,
never a traceback; exit codes are listed in ``EXIT_CODES`` and docs/cli.md.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, NoReturn

import click

from ..client.api import ApiError, RegistryApi, Rollout, ServerUnreachable, segment
from .credentials import key, token
from .exits import (
    EXIT_CANCELLED,
    EXIT_CODES,
    EXIT_ERROR,
    EXIT_EXPIRED,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_STOPPED,
    EXIT_TIMEOUT,
    Failure,
    refused,
)
from .fleet import DURATION_HELP, dead_for_at_least, parse_duration
from .render import ProgressLine, agent_table, command_lines, dead_table, key_values, summary_line
from .watch import wait_for_command

ENROLLMENT_VARIABLE = "AGENT_REGISTRY_ENROLLMENT_TOKEN"
ENROLLMENT_TOKEN = f"enrollment token with --enrollment-token or {ENROLLMENT_VARIABLE}"
SETTINGS_MODULE = "python:agent_registry.server.gunicorn_settings"
DEFAULT_URL = "http://127.0.0.1:8080"


class RegistryGroup(click.Group):
    """Turns client errors into one clear sentence and an exit code, for every command."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ServerUnreachable as exc:
            raise Failure(str(exc), EXIT_ERROR) from None
        except ApiError as exc:
            if exc.status in (401, 403):
                raise refused(exc) from None
            raise Failure(
                exc.sentence(), EXIT_REJECTED if exc.status < 500 else EXIT_ERROR
            ) from None


@dataclass(frozen=True)
class Options:
    url: str
    token: str | None = None


def _check_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise click.BadParameter(f"'{value}' is not an http:// or https:// URL.")
    return value.rstrip("/")


def options(ctx: click.Context) -> Options:
    """The group's options, which ``cli`` stores before any subcommand runs."""
    found = ctx.find_object(Options)
    assert found is not None, "a subcommand ran outside the cli group"
    return found


def api() -> RegistryApi:
    """The API client of this invocation, closed when the command ends."""
    ctx = click.get_current_context()
    found = options(ctx)
    return ctx.with_resource(RegistryApi(found.url, token=found.token))


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def _override_token(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.obj = replace(options(ctx), token=value)


# The group's --token may also be given after the subcommand, where people tend to put it.
token_option = click.option(
    "--token",
    metavar="JWT",
    expose_value=False,
    callback=_override_token,
    help="Operator token (default: the one given before the command, or AGENT_REGISTRY_TOKEN).",
)


@click.group(cls=RegistryGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url",
    envvar="AGENT_REGISTRY_URL",
    default=DEFAULT_URL,
    show_default=True,
    callback=_check_url,
    help="The server's base URL (AGENT_REGISTRY_URL).",
)
@click.option(
    "--token",
    envvar="AGENT_REGISTRY_TOKEN",
    metavar="JWT",
    help="Operator token sent as 'Authorization: Bearer' (AGENT_REGISTRY_TOKEN).",
)
@click.pass_context
def main(ctx: click.Context, url: str, token: str | None) -> None:
    """Agent Registry: the control plane for a fleet of monitoring agents."""
    ctx.obj = Options(url, token or None)


main.add_command(token)
main.add_command(key)


@main.command()
@click.option(
    "--bind",
    envvar="AGENT_REGISTRY_BIND",
    default="0.0.0.0:8080",
    show_default=True,
    help="Address to listen on (AGENT_REGISTRY_BIND).",
)
@click.option(
    "--workers",
    envvar="WEB_CONCURRENCY",
    default=1,
    show_default=True,
    type=int,
    help="gevent worker processes (WEB_CONCURRENCY); >1 needs a Redis store.",
)
def serve(bind: str, workers: int) -> None:
    """Run the server under gunicorn with gevent workers (what `make run` starts)."""
    os.environ["AGENT_REGISTRY_BIND"] = bind
    os.environ["WEB_CONCURRENCY"] = str(workers)
    argv = [sys.executable, "-m", "gunicorn", "-c", SETTINGS_MODULE]
    os.execv(sys.executable, argv)


# Watching the fleet ---------------------------------------------------------------------------


@main.command()
@click.option("--group", metavar="G", help="Only this group's agent changes.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines, one per event (also in a pipe).")
@token_option
def watch(group: str | None, as_json: bool) -> None:
    """Follow the fleet live: counts, agent changes, commands in progress (Ctrl-C stops).

    On a terminal, a live view; in a pipe or with --json, one JSON line per event
    ({"event": "fleet", "data": {...}}), and reconnections on stderr. A dropped stream is
    reopened with backoff.
    """
    from rich.console import Console  # only this command draws with rich

    from .fleet_view import FleetView
    from .fleet_watch import watch_json, watch_live

    client = api()
    events = client.operator_events(group)
    try:
        if as_json or not sys.stdout.isatty():
            watch_json(events, sys.stdout, sys.stderr)
        else:
            watch_live(events, FleetView(client.base_url, group), Console())
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # the reader went away (``| head``): nothing left to do
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python flushes stdout at exit


# Agents -------------------------------------------------------------------------------------


@main.group()
def agents() -> None:
    """List agents, show one, delete them."""


@agents.command("list")
@click.option("--status", metavar="S", help="LIVE, STALE or DEAD (comma-separated for several).")
@click.option("--group", metavar="G", help="Only this group.")
@json_option
@token_option
def list_agents(status: str | None, group: str | None, as_json: bool) -> None:
    """List agents, ordered by id."""
    found = api().agents(status=status, group=group)
    if as_json:
        emit_json(found)
    elif found:
        click.echo(agent_table(found))
    else:
        click.echo("No agents match.", err=True)


@agents.command("show")
@click.argument("agent_id", metavar="ID")
@json_option
@token_option
def show_agent(agent_id: str, as_json: bool) -> None:
    """Show one agent."""
    agent = api().agent(agent_id)
    if as_json:
        emit_json(agent)
    else:
        click.echo(key_values(agent))


@agents.command("delete")
@click.argument("agent_id", metavar="ID")
@token_option
def delete_agent(agent_id: str) -> None:
    """Delete an agent: its stream ends, its open deliveries are CANCELLED, its tokens
    stop working (it may register again). Needs role admin with auth on."""
    api().request("DELETE", f"/agents/{segment(agent_id)}")
    click.echo(f"Deleted agent {agent_id}.")


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, str]:
    """(seconds, the duration as it was written, for the messages)."""
    try:
        return parse_duration(value), value.strip()
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@agents.command("prune")
@click.option(
    "--dead-for",
    "dead_for_option",
    required=True,
    callback=_duration,
    metavar="DURATION",
    help=f"Delete the agents DEAD for at least this long: {DURATION_HELP}.",
)
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@json_option
@token_option
def prune_agents(dead_for_option: tuple[float, str], dry_run: bool, as_json: bool) -> None:
    """Delete every agent that has been DEAD for at least --dead-for (as `agents delete`
    does, one by one). Needs role admin with auth on."""
    client = api()
    dead_for, shown = dead_for_option
    if dry_run:
        doomed = dead_for_at_least(client, dead_for)
        if as_json:
            emit_json(doomed)
        elif doomed:
            click.echo(f"Would delete {len(doomed)} agent(s) DEAD for at least {shown}:")
            click.echo(dead_table(doomed))
        else:
            click.echo(f"No agent has been DEAD for {shown} or more; nothing would go.")
        return
    params = {"status": "DEAD", "deadForSeconds": repr(dead_for)}
    answer = client.request("DELETE", "/agents", params=params).json()
    if as_json:
        emit_json(answer)
    else:
        click.echo(f"Deleted {answer['deleted']} agent(s) DEAD for at least {shown}.")


# Commands -----------------------------------------------------------------------------------


@main.group()
def commands() -> None:
    """Read commands and their deliveries; cancel a command."""


@commands.command("show")
@click.argument("command_id", metavar="ID")
@json_option
@token_option
def show_command(command_id: str, as_json: bool) -> None:
    """Show a command with every target's delivery."""
    command = api().command(command_id)
    if as_json:
        emit_json(command)
    else:
        click.echo(command_lines(command))


@commands.command("cancel")
@click.argument("command_id", metavar="ID")
@json_option
@token_option
def cancel_command(command_id: str, as_json: bool) -> None:
    """Cancel a command: every delivery not yet final becomes CANCELLED, and each of those
    agents with an open stream is told to stop. Needs what sending it needed."""
    command = api().request("POST", f"/commands/{segment(command_id)}/cancel").json()
    if as_json:
        emit_json(command)
        return
    summary = command["summary"]
    if summary["cancelled"]:
        click.echo(f"Command {command_id} cancelled: {summary_line(summary)}.")
    else:
        click.echo(
            f"Command {command_id}: nothing to cancel, every delivery was already final "
            f"({summary_line(summary)})."
        )


def _payload(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, Any]:
    if value is None:
        return {}
    text = value
    if value.startswith("@"):
        try:
            with click.open_file(value[1:], encoding="utf-8") as file:
                text = file.read()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {value[1:]}: {exc.strerror}.") from None
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}.") from None
    if not isinstance(payload, dict):
        raise click.BadParameter('must be a JSON object, e.g. \'{"routeId": "route-a"}\'.')
    return payload


def _amount(ctx: click.Context, param: click.Parameter, value: str | None) -> int | str | None:
    """A count or a percentage, as the rollout's JSON takes it: ``10`` or ``"10%"``."""
    if value is None:
        return None
    text = value.strip()
    if text.endswith("%"):
        return text
    try:
        return int(text)
    except ValueError:
        raise click.BadParameter(
            "must be a whole number or a percentage, e.g. 10 or 25%."
        ) from None


def _rollout(
    agent_id: str | None,
    batch_size: int | str | None,
    max_failures: int | str | None,
    batch_interval: float | None,
) -> Rollout | None:
    if batch_size is None:
        if max_failures is not None or batch_interval is not None:
            raise click.UsageError("--max-failures and --batch-interval need --batch-size.")
        return None
    if agent_id is not None:
        raise click.UsageError("A rollout (--batch-size) is for --group or --all.")
    return Rollout(batch_size, max_failures, batch_interval or 0.0)


@main.command(epilog=EXIT_CODES)
@click.option("--agent", "agent_id", metavar="ID", help="Send to this agent (in any state).")
@click.option("--group", metavar="G", help="Send to this group's LIVE agents.")
@click.option("--all", "to_all", is_flag=True, help="Send to every LIVE agent.")
@click.option(
    "--type",
    "command_type",
    required=True,
    metavar="T",
    help="config-update, deep-trace or replay.",
)
@click.option(
    "--payload",
    callback=_payload,
    metavar="JSON|@FILE",
    help="A JSON object, or @file to read it from (@- for stdin).",
)
@click.option(
    "--deliver-on-connect",
    is_flag=True,
    help="Also write it to a target whose stream opens later, while its delivery is still "
    "PENDING (agents reconnecting during a deploy).",
)
@click.option(
    "--batch-size",
    callback=_amount,
    metavar="N|P%",
    help="A rollout (--group, --all): at most N targets (or P% of them) in flight; each "
    "one that becomes final lets the next be sent.",
)
@click.option(
    "--max-failures",
    callback=_amount,
    metavar="N|P%",
    help="With --batch-size: stop the rollout when more than N (or P%) of the targets have "
    "FAILED or EXPIRED; the unsent are CANCELLED (exit 9).",
)
@click.option(
    "--batch-interval",
    type=click.FloatRange(min=0),
    metavar="S",
    help="With --batch-size: a freed slot waits S seconds before the next target is sent.",
)
@click.option(
    "--wait", is_flag=True, help="Follow deliveries and acks until every target is final."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="S",
    help="With --wait: give up after S seconds (default: until every target is "
    "final; unacknowledged deliveries expire on the server).",
)
@json_option
@token_option
def send(
    agent_id: str | None,
    group: str | None,
    to_all: bool,
    command_type: str,
    payload: dict[str, Any],
    deliver_on_connect: bool,
    batch_size: int | str | None,
    max_failures: int | str | None,
    batch_interval: float | None,
    wait: bool,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Send a command to one agent, a group, or every LIVE agent; with --batch-size, a
    group or everyone a window of targets at a time (a rollout)."""
    if sum((agent_id is not None, group is not None, to_all)) != 1:
        raise click.UsageError("Give exactly one of --agent ID, --group G or --all.")
    if timeout is not None and not wait:
        raise click.UsageError("--timeout only applies with --wait.")
    rollout = _rollout(agent_id, batch_size, max_failures, batch_interval)
    client = api()
    command = client.send(
        command_type,
        payload,
        agent=agent_id,
        group=group,
        deliver_on_connect=deliver_on_connect,
        rollout=rollout,
    )
    if not wait:
        if as_json:
            emit_json(command)
        else:
            summary, staged = command["summary"], command.get("rollout")
            click.echo(
                f"Command {command['commandId']} ({command['type']}) sent to "
                f"{summary['targets']} agent(s)"
                + (
                    f" as a rollout: {staged['sent']} sent so far, at most "
                    f"{staged['batchSize']} at a time."
                    if staged
                    else "."
                )
            )
        return
    _follow(client, command, timeout, as_json)


def _follow(
    client: RegistryApi, command: dict[str, Any], timeout: float | None, as_json: bool
) -> NoReturn:
    progress = ProgressLine(sys.stderr)
    click.echo(
        f"Command {command['commandId']} ({command['type']}): waiting for "
        f"{command['summary']['targets']} target(s).",
        err=True,
    )
    try:
        final, done = wait_for_command(client, command, timeout=timeout, on_progress=progress)
    except KeyboardInterrupt:
        progress.finish()
        raise Failure(
            f"Interrupted; the command goes on: agent-registry commands show "
            f"{command['commandId']}",
            EXIT_INTERRUPTED,
        ) from None
    progress.finish()
    code, sentence = outcome(final, done, timeout)
    if as_json:
        emit_json(final)
    else:
        click.echo(command_lines(final, only_problems=True))
    click.echo(sentence, err=as_json)
    sys.exit(code)


def outcome(command: dict[str, Any], settled: bool, timeout: float | None) -> tuple[int, str]:
    """The exit code and closing sentence of ``send --wait``: failed, expired, timed out."""
    summary = command["summary"]
    targets, failed, expired = summary["targets"], summary["failed"], summary["expired"]
    cancelled = summary.get("cancelled", 0)
    open_ = summary["pending"] + summary["delivered"]
    stopped = command.get("state") == "STOPPED"
    parts = []
    if stopped:
        rollout = command["rollout"]
        parts.append(
            f"the rollout was STOPPED: more than {rollout['maxFailures']} target(s) failed or "
            f"expired, {targets - rollout['sent']} of {targets} were never sent"
        )
        cancelled -= targets - rollout["sent"]
    if failed:
        parts.append(f"{failed} of {targets} target(s) acknowledged FAILURE")
    if expired:
        parts.append(f"{expired} of {targets} target(s) expired without an ack")
    if cancelled:
        parts.append(f"{cancelled} of {targets} target(s) were cancelled")
    if not settled:
        parts.append(
            f"{open_} of {targets} target(s) were not final when the {timeout:g} s timeout passed"
        )
    if not parts:
        return EXIT_OK, f"All {targets} target(s) acknowledged SUCCESS."
    code = (
        EXIT_STOPPED
        if stopped
        else EXIT_FAILED
        if failed
        else EXIT_EXPIRED
        if expired
        else EXIT_CANCELLED
        if cancelled
        else EXIT_TIMEOUT
    )
    sentence = "; ".join(parts)
    return code, sentence[0].upper() + sentence[1:] + "."


# Simulator ----------------------------------------------------------------------------------


@main.command()
@click.option(
    "--agents",
    "count",
    type=click.IntRange(min=1),
    required=True,
    metavar="N",
    help="How many agents to simulate.",
)
@click.option(
    "--group",
    default="simulated",
    show_default=True,
    metavar="G",
    help="Their group; agent ids are G-00001, G-00002, ...",
)
@click.option(
    "--fail-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    metavar="P",
    help="Probability that a command is acknowledged as FAILURE.",
)
@click.option(
    "--ack-delay",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    metavar="S",
    help="Seconds each agent works on a command before acknowledging.",
)
@click.option(
    "--enrollment-token",
    envvar=ENROLLMENT_VARIABLE,
    metavar="JWT",
    help=f"What the agents register with when the server has auth on ({ENROLLMENT_VARIABLE}).",
)
@click.pass_context
def simulate(
    ctx: click.Context,
    count: int,
    group: str,
    fail_rate: float,
    ack_delay: float,
    enrollment_token: str | None,
) -> None:
    """Run N simulated agents (the Python SDK, under gevent) until Ctrl-C."""
    from .simulate import GEVENT_LAUNCHER, Fleet, gevent_patched

    url = options(ctx).url
    # Fail fast, in one sentence, when the server cannot be reached or refuses the names
    # or the token.
    try:
        api().register(Fleet.registration(group, 1, count), token=enrollment_token)
    except ApiError as exc:
        if exc.status in (401, 403):
            raise refused(exc, ENROLLMENT_TOKEN) from None
        raise
    if not gevent_patched():
        # Like `serve`, this replaces the current process (here: by a gevent-patched one).
        args = [
            "--url",
            url,
            "simulate",
            "--agents",
            str(count),
            "--group",
            group,
            "--fail-rate",
            str(fail_rate),
            "--ack-delay",
            str(ack_delay),
        ]
        if enrollment_token:
            # Through the environment, not the command line, where `ps` would show it.
            os.environ[ENROLLMENT_VARIABLE] = enrollment_token
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, "-c", GEVENT_LAUNCHER, *args])
    _run_fleet(url, count, group, fail_rate, ack_delay, enrollment_token)


def _run_fleet(
    url: str,
    count: int,
    group: str,
    fail_rate: float,
    ack_delay: float,
    enrollment_token: str | None,
) -> None:
    import gevent

    from .simulate import Behaviour, Fleet

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, stop.set)
    fleet = Fleet(url, count, group, Behaviour(fail_rate, ack_delay), enrollment_token)
    fleet.start()
    try:
        deadline = time.monotonic() + 30
        while (ready := fleet.ready()) < count and time.monotonic() < deadline:
            if stop.wait(0.1):
                break
        click.echo(
            f"{ready} of {count} simulated agents in group '{group}' connected to {url}; "
            "Ctrl-C stops them.",
            err=True,
        )
        reported = (0, 0)
        while not stop.wait(2.0):
            handled = fleet.handled()
            if handled != reported:
                reported = handled
                click.echo(
                    f"{fleet.ready()} connected; {handled[0]} command(s) handled, "
                    f"{handled[1]} failed.",
                    err=True,
                )
    finally:
        click.echo(f"Stopping {count} simulated agents...", err=True)
        fleet.stop()
    handled = fleet.handled()
    click.echo(f"Stopped. {handled[0]} command(s) handled, {handled[1]} failed.", err=True)

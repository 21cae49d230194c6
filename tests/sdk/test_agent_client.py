"""AgentClient against a real gunicorn + gevent server: the whole agent cycle."""

from __future__ import annotations

import threading
import time

import pytest

from agent_registry.client import Command, CommandFailed, Result
from harness.gunicorn import FAST_LIFECYCLE, GunicornServer
from harness.sockets import unused_port
from harness.wait import holds_for

from .conftest import final_delivery, send, wait_until

pytestmark = pytest.mark.e2e


def test_registers_with_its_identity_and_learns_the_servers_config(make_agent, http):
    agent = make_agent(
        "cycle-register",
        group="payments",
        name="Payments",
        version="3.2.1",
        route_ids=["route-a"],
        capabilities={"replay": True},
    ).start()
    assert agent.wait_ready(5)

    record = http.get("/agents/cycle-register").json()
    assert record["group"] == "payments"
    assert record["name"] == "Payments"
    assert record["version"] == "3.2.1"
    assert record["routeIds"] == ["route-a"]
    assert record["capabilities"] == {"replay": True}
    assert record["state"] == "LIVE"
    assert record["connected"] is True
    assert agent.config["heartbeatIntervalSeconds"] == 0.2
    assert agent.registrations == 1


def test_each_command_type_goes_to_its_handler_and_the_result_is_acknowledged(make_agent, http):
    agent = make_agent("cycle-commands")
    seen: list[Command] = []

    @agent.handler("deep-trace")
    def deep_trace(command: Command) -> str:
        seen.append(command)
        return f"tracing {command.payload['routeId']}"

    @agent.handler("replay")
    def replay(command: Command) -> Result:
        seen.append(command)
        return Result(message="replayed", details={"exchanges": 3})

    agent.start()
    assert agent.wait_ready(5)

    traced = final_delivery(
        http, send(http, "cycle-commands", "deep-trace", {"routeId": "route-a"})
    )
    replayed = final_delivery(http, send(http, "cycle-commands", "replay"))

    assert [command.type for command in seen] == ["deep-trace", "replay"]
    assert seen[0].payload == {"routeId": "route-a"}
    assert seen[0].issued_at and seen[0].expires_at
    assert traced["status"] == "ACKNOWLEDGED"
    assert traced["result"] == {"status": "SUCCESS", "message": "tracing route-a", "details": {}}
    assert replayed["result"] == {
        "status": "SUCCESS",
        "message": "replayed",
        "details": {"exchanges": 3},
    }
    assert agent.commands_handled == 2


def test_a_handler_that_raises_is_acknowledged_as_failure_with_its_message(make_agent, http):
    agent = make_agent("cycle-failure")

    @agent.handler("deep-trace")
    def broken(command: Command) -> None:
        raise RuntimeError("trace buffer is full")

    @agent.handler("replay")
    def refused(command: Command) -> None:
        raise CommandFailed("replay refused", {"reason": "read-only"})

    agent.start()
    assert agent.wait_ready(5)

    failed = final_delivery(http, send(http, "cycle-failure", "deep-trace"))
    detailed = final_delivery(http, send(http, "cycle-failure", "replay"))
    unhandled = final_delivery(http, send(http, "cycle-failure", "config-update"))

    assert failed["status"] == "FAILED"
    assert failed["result"] == {
        "status": "FAILURE",
        "message": "trace buffer is full",
        "details": {},
    }
    assert detailed["result"]["details"] == {"reason": "read-only"}
    assert unhandled["result"]["message"] == (
        "This agent has no handler for command type 'config-update'."
    )
    assert agent.commands_failed == 3


def test_a_slow_handler_does_not_stall_the_stream(make_agent, http):
    agent = make_agent("cycle-slow")
    release = threading.Event()

    @agent.handler("replay")
    def slow(command: Command) -> None:
        release.wait(5)

    @agent.handler("deep-trace")
    def quick(command: Command) -> None:
        return None

    agent.start()
    assert agent.wait_ready(5)
    slow_id = send(http, "cycle-slow", "replay")
    quick_id = send(http, "cycle-slow", "deep-trace")
    # Both are written to the stream while the first handler still runs.
    wait_until(
        lambda: http.get(f"/commands/{quick_id}").json()["deliveries"][0]["status"] == "DELIVERED"
    )
    release.set()
    assert final_delivery(http, slow_id)["status"] == "ACKNOWLEDGED"
    assert final_delivery(http, quick_id)["status"] == "ACKNOWLEDGED"


def test_a_cancel_reaches_the_running_handler_and_a_queued_command_never_runs(make_agent, http):
    agent = make_agent("cycle-cancel")
    started = threading.Event()
    ran: dict[str, bool] = {}  # command id -> whether it saw the cancel

    @agent.handler("replay")
    def long_replay(command: Command) -> None:
        started.set()
        ran[command.id] = command.wait_cancelled(10)

    @agent.handler("deep-trace")
    def trace(command: Command) -> None:
        ran[command.id] = command.cancelled

    agent.start()
    assert agent.wait_ready(5)
    running = send(http, "cycle-cancel", "replay")
    assert started.wait(5)
    queued = send(http, "cycle-cancel", "deep-trace")
    wait_until(
        lambda: http.get(f"/commands/{queued}").json()["deliveries"][0]["status"] == "DELIVERED"
    )

    assert http.post(f"/commands/{queued}/cancel").status_code == 200
    wait_until(lambda: agent.commands_cancelled == 1)
    assert http.post(f"/commands/{running}/cancel").status_code == 200
    wait_until(lambda: running in ran)
    # Commands run in arrival order: once a later one is acknowledged, the queued one
    # has had its turn.
    later = send(http, "cycle-cancel", "deep-trace")
    assert final_delivery(http, later)["status"] == "ACKNOWLEDGED"

    assert ran == {running: True, later: False}
    assert agent.commands_cancelled == 2
    for command_id in (running, queued):
        assert http.get(f"/commands/{command_id}").json()["deliveries"][0]["status"] == (
            "CANCELLED"
        )


def test_heartbeats_at_the_interval_the_server_returned(make_agent, http):
    agent = make_agent("cycle-heartbeat").start()
    assert agent.wait_ready(5)
    first = http.get("/agents/cycle-heartbeat").json()["lastHeartbeatAt"]
    # Three times staleAfterSeconds (0.6 s): only heartbeats every 0.2 s keep it LIVE.
    assert holds_for(lambda: http.get("/agents/cycle-heartbeat").json()["state"] == "LIVE", 1.8)
    record = http.get("/agents/cycle-heartbeat").json()
    assert record["stateChangedAt"] == record["registeredAt"]
    assert record["lastHeartbeatAt"] > first


def test_stop_ends_the_stream_promptly_and_joins_every_thread(make_agent, http):
    agent = make_agent("cycle-stop").start()
    assert agent.wait_ready(5)
    started = time.monotonic()
    agent.stop()
    assert time.monotonic() - started < 1.0
    assert not agent.connected
    assert not [t for t in threading.enumerate() if t.name.startswith("agent-cycle-stop")]
    wait_until(lambda: http.get("/agents/cycle-stop").json()["connected"] is False)


def test_stop_while_the_server_is_unreachable_is_prompt(make_agent):
    agent = make_agent("cycle-nowhere", url=f"http://127.0.0.1:{unused_port()}").start()
    assert not agent.wait_ready(0.3)
    started = time.monotonic()
    agent.stop()
    assert time.monotonic() - started < 1.0
    assert not agent.registered


def test_reconnects_after_a_server_restart_registering_again_with_last_event_id(
    make_agent, start_server
):
    """The memory store forgets everything on restart: the heartbeat and the stream both
    get 404, the agent registers again and reopens its stream, keeping its Last-Event-ID.

    The server asks for ``retry: 5000``; ``max_backoff=3`` keeps this test short, with
    each try 1.5-3 s apart. (Not less: a try within a second of SIGTERM lands on the
    stopping server, which still accepts and then holds that stream for its
    graceful_timeout.) Tries while no server runs wait in the socket's backlog."""
    server: GunicornServer = start_server(FAST_LIFECYCLE)
    agent = make_agent("cycle-restart", url=server.url, max_backoff=3.0)
    agent.handler("deep-trace")(lambda command: "ok")
    agent.start()
    assert agent.wait_ready(5)

    import httpx

    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=5) as http:
        before = send(http, "cycle-restart")
        assert final_delivery(http, before)["status"] == "ACKNOWLEDGED"
        assert agent.last_event_id == before

        server.restart()

        wait_until(lambda: agent.registrations == 2, timeout=20)
        assert agent.wait_ready(5)
        assert http.get("/agents/cycle-restart").json()["connected"] is True
        after = send(http, "cycle-restart")
        assert final_delivery(http, after)["status"] == "ACKNOWLEDGED"
    agent.stop()

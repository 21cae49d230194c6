"""The SDK's pure parts (backoff, handler outcomes) and its 404 handling, without a server."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from agent_registry.client import (
    AgentClient,
    ApiError,
    Backoff,
    Command,
    CommandFailed,
    Result,
)
from agent_registry.client.commands import run_handler

from .conftest import wait_until

COMMAND = Command("c-1", "deep-trace", {"routeId": "a"})


class TestBackoff:
    def test_doubles_from_base_up_to_the_cap(self):
        backoff = Backoff(base=1, cap=10, jitter=0, rand=lambda: 0.5)
        assert [backoff.next_delay() for _ in range(6)] == [1, 2, 4, 8, 10, 10]

    def test_jitter_keeps_each_delay_between_half_and_all_of_its_step(self):
        low = Backoff(base=4, jitter=0.5, rand=lambda: 0.999999)
        high = Backoff(base=4, jitter=0.5, rand=lambda: 0.0)
        assert low.next_delay() == pytest.approx(2.0, abs=1e-3)
        assert high.next_delay() == 4.0

    def test_honours_the_servers_retry_and_resets_after_success(self):
        backoff = Backoff(base=1, jitter=0)
        backoff.honour_retry(5000)
        assert backoff.next_delay() == 5
        assert backoff.next_delay() == 10
        backoff.reset()
        assert backoff.next_delay() == 5

    def test_ignores_a_missing_or_nonsense_retry(self):
        backoff = Backoff(base=1, jitter=0)
        backoff.honour_retry(None)
        backoff.honour_retry(0)
        assert backoff.next_delay() == 1

    def test_refuses_settings_that_make_no_sense(self):
        with pytest.raises(ValueError):
            Backoff(base=0)


class TestHandlerOutcome:
    @pytest.mark.parametrize(
        ("returned", "expected"),
        [
            (None, Result()),
            ("done", Result(message="done")),
            ({"n": 1}, Result(details={"n": 1})),
            (Result("FAILURE", "no"), Result("FAILURE", "no")),
        ],
    )
    def test_return_values(self, returned, expected):
        assert run_handler(lambda command: returned, COMMAND) == expected

    def test_an_exception_is_a_failure_with_its_message(self):
        def handler(command):
            raise KeyError("routeId")

        assert run_handler(handler, COMMAND) == Result("FAILURE", "'routeId'")

    def test_an_exception_without_a_message_is_named_by_its_type(self):
        def handler(command):
            raise TimeoutError

        assert run_handler(handler, COMMAND).message == "TimeoutError"

    def test_command_failed_carries_details(self):
        def handler(command):
            raise CommandFailed("nope", {"why": "test"})

        assert run_handler(handler, COMMAND) == Result("FAILURE", "nope", {"why": "test"})

    def test_a_type_without_handler_fails(self):
        result = run_handler(None, COMMAND)
        assert result.status == "FAILURE"
        assert "deep-trace" in result.message

    def test_a_command_is_read_from_the_event_data(self):
        data = json.dumps(
            {
                "commandId": "c-9",
                "type": "replay",
                "payload": {"x": 1},
                "issuedAt": "2026-03-11T10:15:30.000Z",
                "expiresAt": "2026-03-11T10:16:30.000Z",
            }
        )
        command = Command.from_event("replay", data)
        assert command == Command(
            "c-9", "replay", {"x": 1}, "2026-03-11T10:15:30.000Z", "2026-03-11T10:16:30.000Z"
        )
        with pytest.raises(ValueError):
            Command.from_event("replay", '{"no": "id"}')


def test_api_error_sentence_names_each_wrong_field():
    error = ApiError(
        400,
        "VALIDATION_FAILED",
        "The request body is invalid: type.",
        {"type": ["Unknown command type 'x'."]},
    )
    assert str(error) == ("The request body is invalid: type — type: Unknown command type 'x'.")


def test_a_heartbeat_answered_404_registers_again():
    """Heartbeat 404 (AGENT_NOT_REGISTERED) alone, with the stream unavailable (503)."""
    lock = threading.Lock()
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        with lock:
            calls.append(path)
        if path.endswith("/register"):
            return httpx.Response(
                201,
                json={
                    "agentId": "unit-1",
                    "sseEndpoint": None,
                    "config": {"heartbeatIntervalSeconds": 0.05},
                    "serverPublicKey": None,
                },
            )
        if path.endswith("/heartbeat"):
            return httpx.Response(
                404,
                json={
                    "status": 404,
                    "error": "Not Found",
                    "code": "AGENT_NOT_REGISTERED",
                    "message": "Agent 'unit-1' is not registered; register again.",
                },
            )
        return httpx.Response(
            503,
            json={
                "status": 503,
                "error": "Service Unavailable",
                "code": "STORE_UNAVAILABLE",
                "message": "down",
            },
        )

    agent = AgentClient(
        "http://registry.test", "unit-1", "g", transport=httpx.MockTransport(answer)
    )
    agent.start()
    try:
        wait_until(lambda: agent.registrations >= 3, timeout=3)
    finally:
        agent.stop()
    with lock:
        assert calls.count("/api/v1/agents/unit-1/heartbeat") >= 2


def test_a_stopped_client_cannot_be_started_again():
    agent = AgentClient(
        "http://registry.test",
        "unit-2",
        "g",
        transport=httpx.MockTransport(lambda request: httpx.Response(503)),
    )
    agent.stop()
    with pytest.raises(RuntimeError, match="starts once"):
        agent.start()


def test_send_with_a_rollout_posts_it_as_the_contract_spells_it():
    from agent_registry.client import RegistryApi, Rollout

    bodies = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append((request.url.path, json.loads(request.content)))
        return httpx.Response(202, json={"commandId": "c-1"})

    api = RegistryApi("http://registry.test", transport=httpx.MockTransport(answer))
    api.send("replay", group="g", rollout=Rollout("10%", max_failures=2, batch_interval=1.5))
    api.send("replay", rollout=Rollout(5))

    assert bodies == [
        (
            "/api/v1/agents/groups/g/commands",
            {
                "type": "replay",
                "payload": {},
                "rollout": {"batchSize": "10%", "maxFailures": 2, "batchIntervalSeconds": 1.5},
            },
        ),
        ("/api/v1/agents/commands", {"type": "replay", "payload": {}, "rollout": {"batchSize": 5}}),
    ]

"""AgentClient with auth on and signed events, against a scripted server (httpx's mock
transport): which token each request carries, renewal, re-enrolling on 401, and what the
agent does with events that fail their checks."""

from __future__ import annotations

import datetime
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from agent_registry.client import AgentClient
from agent_registry.security.signing import CommandSigner

from .conftest import wait_until
from .signed_frames import data_of, frame, new_key, registration_keys

ENROLL = "enroll-token"


def iso_in(seconds: float) -> str:
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class ScriptedServer:
    """Answers like a server with auth on: each registration mints ``agent-token-N``."""

    def __init__(self, signer: CommandSigner | None = None, token_ttl: float = 3600) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str | None]] = []  # (what, Authorization)
        self.signer, self.token_ttl = signer, token_ttl
        self.frames: list[bytes] = []
        self.tokens = 0
        self.refuse: dict[str, int] = {}  # what -> how many more times to answer 401
        self.acked: list[str] = []

    def answer(self, request: httpx.Request) -> httpx.Response:
        what = request.url.path.rsplit("/", 1)[-1]  # register, heartbeat, events or ack
        with self.lock:
            self.calls.append((what, request.headers.get("Authorization")))
            if self.refuse.get(what):
                self.refuse[what] -= 1
                return refusal()
            if what == "register":
                return self.registered()
            if what == "heartbeat":
                return httpx.Response(204)
            if what == "events":
                body = b": connected\n\n" + b"".join(self.frames)
                return httpx.Response(
                    200, headers={"Content-Type": "text/event-stream"}, content=body
                )
            self.acked.append(request.url.path.split("/")[-2])
            return httpx.Response(200, json={})

    def registered(self) -> httpx.Response:
        self.tokens += 1
        keys = registration_keys(self.signer) if self.signer else {"serverPublicKey": None}
        return httpx.Response(
            200,
            json={
                "agentId": "agent-1",
                "sseEndpoint": "http://registry.test/api/v1/agents/agent-1/events",
                "config": {"heartbeatIntervalSeconds": 0.05, "keepaliveSeconds": 1},
                "accessToken": f"agent-token-{self.tokens}",
                "accessTokenExpiresAt": iso_in(self.token_ttl),
                **keys,
            },
        )

    def seen(self, what: str) -> list[str | None]:
        with self.lock:
            return [auth for name, auth in self.calls if name == what]


def refusal() -> httpx.Response:
    return httpx.Response(
        401,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        json={
            "status": 401,
            "error": "Unauthorized",
            "code": "UNAUTHENTICATED",
            "message": "The token is no longer the agent's current one.",
        },
    )


@pytest.fixture
def agent_on() -> Callable[..., AgentClient]:
    started: list[AgentClient] = []

    def start(server: ScriptedServer, **handlers) -> AgentClient:
        agent = AgentClient(
            "http://registry.test",
            "agent-1",
            "orders",
            enrollment_token=ENROLL,
            handlers={"deep-trace": lambda command: "traced", **handlers},
            transport=httpx.MockTransport(server.answer),
        )
        started.append(agent.start())
        return agent

    yield start
    for agent in started:
        agent.stop()


def test_it_enrolls_with_the_enrollment_token_then_acts_with_its_agent_token(agent_on):
    signer = CommandSigner([new_key()])
    server = ScriptedServer(signer)
    server.frames.append(frame(signer, command_id="c-1"))
    agent = agent_on(server)

    wait_until(lambda: server.acked == ["c-1"] and len(server.seen("heartbeat")) >= 2)

    assert server.seen("register") == [f"Bearer {ENROLL}"]
    assert set(server.seen("heartbeat")) == {"Bearer agent-token-1"}
    assert set(server.seen("events")) == {"Bearer agent-token-1"}
    assert server.seen("ack") == ["Bearer agent-token-1"]
    assert agent.commands_handled == 1


def test_it_renews_at_half_the_tokens_lifetime_with_its_own_token(agent_on):
    server = ScriptedServer(token_ttl=0.6)
    agent_on(server)

    wait_until(lambda: len(server.seen("register")) >= 3, timeout=3)

    registrations = server.seen("register")
    assert registrations[:3] == [
        f"Bearer {ENROLL}",
        "Bearer agent-token-1",
        "Bearer agent-token-2",
    ]
    wait_until(lambda: server.seen("heartbeat")[-1:] != ["Bearer agent-token-1"])


def test_it_does_not_renew_early(agent_on):
    server = ScriptedServer(token_ttl=2.0)
    agent_on(server)

    wait_until(lambda: len(server.seen("heartbeat")) >= 10)  # about half a second

    assert server.seen("register") == [f"Bearer {ENROLL}"]


def test_a_refused_renewal_enrolls_again(agent_on):
    server = ScriptedServer(token_ttl=0.2)
    agent = agent_on(server)
    wait_until(lambda: agent.registered)
    with server.lock:
        server.refuse["register"] = 1  # the renewal

    wait_until(lambda: len(server.seen("register")) >= 3, timeout=3)

    assert server.seen("register")[:3] == [
        f"Bearer {ENROLL}",
        "Bearer agent-token-1",
        f"Bearer {ENROLL}",
    ]


@pytest.mark.parametrize("refused", ["heartbeat", "events"])
def test_a_401_as_the_agent_registers_again_with_the_enrollment_token(agent_on, refused):
    server = ScriptedServer()
    server.refuse[refused] = 1
    agent_on(server)

    wait_until(lambda: len(server.seen("register")) >= 2)
    wait_until(lambda: "Bearer agent-token-2" in server.seen(refused))

    assert server.seen("register")[:2] == [f"Bearer {ENROLL}", f"Bearer {ENROLL}"]


def test_an_ack_refused_401_registers_again_and_is_sent_again(agent_on):
    server = ScriptedServer()
    server.frames.append(frame(None, command_id="c-ack"))
    server.refuse["ack"] = 1
    agent_on(server)

    wait_until(lambda: server.acked == ["c-ack"])

    assert server.seen("ack") == ["Bearer agent-token-1", "Bearer agent-token-2"]


def test_an_unknown_key_id_makes_it_register_again_then_the_event_runs(agent_on):
    old, new = new_key(), new_key()
    server = ScriptedServer(CommandSigner([old]))
    agent = agent_on(server)
    wait_until(lambda: agent.registered)
    with server.lock:  # the server restarted with a new key, and signs with it
        server.signer = CommandSigner([new, old])
        server.frames.append(frame(server.signer, command_id="c-rotated"))

    wait_until(lambda: server.acked == ["c-rotated"], timeout=5)

    assert server.seen("register")[:2] == [f"Bearer {ENROLL}", "Bearer agent-token-1"]


def test_a_key_still_unknown_after_registering_again_is_refused_without_more_registering(
    agent_on, caplog
):
    """Every stream the scripted server opens repeats the event: the agent registers again
    for the first copy only (at most once per KEY_REFRESH_SECONDS)."""
    published, stranger = CommandSigner([new_key()]), CommandSigner([new_key()])
    server = ScriptedServer(published)
    server.frames.append(frame(stranger, command_id="c-stranger"))
    with caplog.at_level(logging.WARNING, logger="agent_registry.client"):
        agent = agent_on(server)

        def refusals() -> list[str]:
            return [r.getMessage() for r in caplog.records if "c-stranger" in r.getMessage()]

        wait_until(lambda: len(refusals()) >= 2, timeout=5)

    assert "which the server did not publish" in refusals()[0]
    assert "even after registering again" in refusals()[1]
    assert server.acked == []
    assert agent.commands_handled == 0
    assert len(server.seen("register")) == 2  # once at the start, once to learn the keys


def test_a_bad_event_never_runs_is_never_acked_and_is_logged_once(agent_on, caplog):
    signer = CommandSigner([new_key()])
    server = ScriptedServer(signer)
    tampered = data_of(frame(signer, command_id="c-bad"))
    tampered["signature"]["value"] = tampered["signature"]["value"][::-1]
    server.frames += [
        b"id: c-bad\nevent: deep-trace\ndata: " + json.dumps(tampered).encode() + b"\n\n",
        frame(signer, command_id="c-other-agent", target=("agent", "agent-2")),
        frame(signer, command_id="c-good"),
    ]
    ran: list[str] = []
    with caplog.at_level(logging.WARNING, logger="agent_registry.client"):
        agent_on(server, **{"deep-trace": lambda command: ran.append(command.id)})
        wait_until(lambda: server.acked == ["c-good"])

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    bad = [warning for warning in warnings if "c-bad" in warning]
    assert ran == ["c-good"]
    assert len(bad) == 1
    assert "signature does not verify" in bad[0]
    assert any("c-other-agent" in w and "not for agent 'agent-1'" in w for w in warnings)


def test_a_command_written_again_on_a_new_stream_runs_once(agent_on):
    """The scripted stream ends after its frames, so the agent reconnects and reads the
    same command again, as after a deliverOnConnect following a server crash."""
    signer = CommandSigner([new_key()])
    server = ScriptedServer(signer)
    server.frames.append(frame(signer, command_id="c-once"))
    agent = agent_on(server)

    wait_until(lambda: len(server.seen("events")) >= 2, timeout=5)

    assert server.acked == ["c-once"]
    assert agent.commands_handled == 1


def test_a_cancel_event_is_not_taken_for_a_command(agent_on):
    server = ScriptedServer(CommandSigner([new_key()]))
    server.frames.append(b'event: cancel\ndata: {"commandId": "c-cancelled"}\n\n')
    agent = agent_on(server)

    wait_until(lambda: len(server.seen("events")) >= 1)
    wait_until(lambda: len(server.seen("heartbeat")) >= 3)

    assert server.acked == []
    assert agent.commands_handled == 0


def test_a_token_that_looks_expired_by_the_agents_clock_is_renewed_once_a_heartbeat(agent_on):
    """A clock far ahead of the server's must not make the agent register in a loop."""
    server = ScriptedServer(token_ttl=-60)
    agent_on(server)

    time.sleep(0.5)  # ten heartbeat intervals of 0.05 s

    assert 3 <= len(server.seen("register")) <= 15


def test_a_stream_that_ends_after_a_renewal_is_opened_again_at_once(agent_on):
    """A server may end a stream whose token is no longer current; waiting out the
    reconnect backoff (at least half a second here) would miss commands."""
    server = ScriptedServer(token_ttl=0.6)
    renewed = threading.Event()
    answer = server.answer

    def held_until_renewed() -> Iterator[bytes]:
        yield b": connected\n\n"
        renewed.wait(5)

    def scripted(request: httpx.Request) -> httpx.Response:
        response = answer(request)
        if request.url.path.endswith("/register") and len(server.seen("register")) == 2:
            renewed.set()
        if request.url.path.endswith("/events") and not renewed.is_set():
            return httpx.Response(
                200, headers={"Content-Type": "text/event-stream"}, content=held_until_renewed()
            )
        return response

    server.answer = scripted
    agent_on(server)
    wait_until(renewed.is_set, timeout=3)
    at = time.monotonic()

    wait_until(lambda: len(server.seen("events")) >= 2)

    assert time.monotonic() - at < 0.3
    assert server.seen("events")[1] == "Bearer agent-token-2"

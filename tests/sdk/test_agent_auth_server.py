"""AgentClient against a real server with auth on and signed commands.

These need the server side of issue 10 (AGENT_REGISTRY_AUTH, agent tokens, signed frames).
"""

from __future__ import annotations

import httpx
import pytest

from harness.gunicorn import FAST_LIFECYCLE, GunicornServer

from ..secured import enrollment_token, operator_token, secured_env
from .conftest import final_delivery, send, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("sdk-auth")
    env = secured_env(directory, **FAST_LIFECYCLE, AGENT_REGISTRY_KEEPALIVE_SECONDS="0.5")
    with GunicornServer(log_dir=directory, env=env) as process:
        yield process


@pytest.fixture
def http(server: GunicornServer):
    headers = {"Authorization": f"Bearer {operator_token('admin')}"}
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=5, headers=headers) as client:
        yield client


def test_an_enrolled_agent_verifies_runs_and_acknowledges_a_signed_command(make_agent, http):
    agent = make_agent("auth-run", group="auth", enrollment_token=enrollment_token(["auth"]))
    agent.handler("deep-trace")(lambda command: f"traced {command.payload['routeId']}")
    agent.start()
    assert agent.wait_ready(5)

    delivery = final_delivery(http, send(http, "auth-run", "deep-trace", {"routeId": "r-1"}))

    assert delivery["status"] == "ACKNOWLEDGED"
    assert delivery["result"]["message"] == "traced r-1"
    signing = http.get("/server").json()["signing"]
    assert list(agent.registrar.current.keys.by_id) == [signing["keyId"]]
    assert agent.registrar.current.token


def test_an_agent_without_an_enrollment_token_is_not_registered(make_agent):
    agent = make_agent("auth-none", group="auth").start()

    assert not agent.wait_ready(1)
    assert not agent.registered


def test_an_enrollment_token_for_other_groups_does_not_register(make_agent):
    agent = make_agent("auth-scope", group="auth", enrollment_token=enrollment_token(["else"]))
    agent.start()

    assert not agent.wait_ready(1)


def test_a_clone_that_takes_the_id_over_makes_the_agent_enroll_again(make_agent, server):
    agent = make_agent("auth-clone", group="auth", enrollment_token=enrollment_token())
    agent.start()
    assert agent.wait_ready(5)

    clone = httpx.post(
        f"{server.url}/api/v1/agents/register",
        json={"id": "auth-clone", "group": "auth"},
        headers={"Authorization": f"Bearer {enrollment_token()}"},
    )
    assert clone.status_code == 200, clone.text

    wait_until(lambda: agent.registrations >= 2)  # its next heartbeat got 401


def test_renewal_at_half_the_lifetime_keeps_the_agent_working(tmp_path, make_agent):
    env = secured_env(tmp_path, **FAST_LIFECYCLE, AGENT_REGISTRY_AGENT_TOKEN_TTL_SECONDS="1")
    with GunicornServer(log_dir=tmp_path, env=env) as server:
        agent = make_agent(
            "auth-renew", group="auth", url=server.url, enrollment_token=enrollment_token()
        ).start()
        assert agent.wait_ready(5)

        wait_until(lambda: agent.registrations >= 4, timeout=5)  # every half second
        headers = {"Authorization": f"Bearer {operator_token()}"}
        with httpx.Client(base_url=f"{server.url}/api/v1", headers=headers) as http:
            assert http.get("/agents/auth-renew").json()["state"] == "LIVE"
            agent.stop()

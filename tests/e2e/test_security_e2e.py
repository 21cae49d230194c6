"""Auth on, through real gunicorn servers: tokens, and signed events an agent can verify.

On the memory store (one worker, an ephemeral key) and on Redis with three workers sharing
one key file, so that whichever worker holds a stream signs with the published key.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_der_public_key

from agent_registry.security.signing import generate_pem
from agent_registry.security.tokens import Role, TokenIssuer
from harness.redis_server import RedisServer
from harness.wait import wait_until
from tests.e2e.sse_client import StreamListener

pytestmark = pytest.mark.e2e

SECRET = "an-end-to-end-secret-that-is-long-enough-42"
FAST = {"AGENT_REGISTRY_KEEPALIVE_SECONDS": "0.3", "AGENT_REGISTRY_SWEEP_INTERVAL_SECONDS": "0.1"}


@pytest.fixture(params=["memory", "redis-3-workers"])
def server(request, start_server, tmp_path):
    env = {**FAST, "AGENT_REGISTRY_AUTH": "on", "AGENT_REGISTRY_TOKEN_SECRET": SECRET}
    if request.param == "memory":
        return start_server(env)
    redis_server: RedisServer = request.getfixturevalue("redis_server")
    redis_server.flush()
    key_file = tmp_path / "signing.pem"
    key_file.write_bytes(generate_pem())
    env.update(AGENT_REGISTRY_STORE=redis_server.url, AGENT_REGISTRY_SIGNING_KEY_FILE=str(key_file))
    return start_server(env, workers=3)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def verify(event: dict[str, Any], keys: dict[str, Ed25519PublicKey]) -> dict[str, Any]:
    """What an agent does: check the signature, then read only the signed content."""
    signature = event["data"]["signature"]
    signed = base64.b64decode(signature["signed"])
    keys[signature["keyId"]].verify(base64.b64decode(signature["value"]), signed)
    return dict(json.loads(signed))


def test_an_enrolled_agent_receives_signed_commands_and_acks_with_its_token(server):
    issuer = TokenIssuer(SECRET, time.time)
    admin = bearer(issuer.operator("ops@example.com", Role.ADMIN, None, 600)[0])
    with httpx.Client(base_url=server.url, timeout=5) as http:
        assert http.get("/api/v1/agents").status_code == 401
        enrollment = http.post("/api/v1/tokens/enrollment", headers=admin, json={"groups": ["g"]})
        assert enrollment.status_code == 201
        registered = [
            http.post(
                "/api/v1/agents/register",
                headers=bearer(enrollment.json()["token"]),
                json={"id": agent_id, "group": "g"},
            ).json()
            for agent_id in ("agent-1", "agent-2")
        ]
        keys = {
            key["keyId"]: load_der_public_key(base64.b64decode(key["publicKey"]))
            for key in registered[0]["serverPublicKeys"]
        }
        assert registered[1]["serverPublicKeys"] == registered[0]["serverPublicKeys"]
        streams = [
            StreamListener(server.url, answer["agentId"], bearer(answer["accessToken"])).start()
            for answer in registered
        ]
        try:
            sent = http.post(
                "/api/v1/agents/groups/g/commands",
                headers=admin,
                json={"type": "replay", "payload": {"from": "2026-12-01T00:00:00Z"}},
            )
            assert sent.status_code == 202
            assert sent.json()["createdBy"] == "ops@example.com"
            events = [stream.next_command() for stream in streams]
        finally:
            for stream in streams:
                stream.close()
        signed = [verify(event, keys) for event in events]
        assert signed[0] == signed[1]  # one signature for every target of the command
        assert signed[0]["target"] == {"kind": "group", "value": "g"}
        assert signed[0]["commandId"] == sent.json()["commandId"]
        assert signed[0]["payload"] == {"from": "2026-12-01T00:00:00Z"}

        agent = registered[0]
        ack_path = f"/api/v1/agents/agent-1/commands/{signed[0]['commandId']}/ack"
        assert http.post(ack_path, headers=bearer(registered[1]["accessToken"])).status_code == 403
        assert http.post(ack_path, headers=bearer(agent["accessToken"])).status_code == 200
        assert wait_until(
            lambda: (
                http.get(f"/api/v1/commands/{signed[0]['commandId']}", headers=admin).json()[
                    "summary"
                ]["acknowledged"]
                == 1
            ),
            within=3,
        )


def test_a_stream_opened_with_a_retired_token_ends_when_the_id_registers_again(server):
    """Review finding: a copy that took an id over left the old copy's stream open, so
    commands for the id (signed for it) still reached the copy that had lost it."""
    issuer = TokenIssuer(SECRET, time.time)
    enroll = bearer(issuer.enrollment(None, 600)[0])
    admin = bearer(issuer.operator("ops", Role.ADMIN, None, 600)[0])
    with httpx.Client(base_url=server.url, timeout=5) as http:
        body = {"id": "taken-1", "group": "g"}
        first = http.post("/api/v1/agents/register", headers=enroll, json=body).json()
        stream = StreamListener(server.url, "taken-1", bearer(first["accessToken"])).start()
        try:
            second = http.post("/api/v1/agents/register", headers=enroll, json=body).json()
            assert stream.ended.wait(5), "the retired token's stream stayed open"
            sent = http.post(
                "/api/v1/agents/taken-1/commands", headers=admin, json={"type": "replay"}
            )
            assert sent.status_code == 202
            assert stream.commands_within(0.3) == []
        finally:
            stream.close()
        current = StreamListener(server.url, "taken-1", bearer(second["accessToken"])).start()
        current.close()

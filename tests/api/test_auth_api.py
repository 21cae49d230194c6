"""§ Security of API.md: tokens, the permission table row by row, errors and precedence.

Every test runs on both stores. Tokens are minted on the app's fake clock, so expiry is
tested by moving the clock, not by waiting.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient

from agent_registry.security.signing import generate_pem
from agent_registry.security.tokens import Role, TokenIssuer
from harness.clock import FakeClock
from tests.api import assert_error

SECRET = "a-test-secret-that-is-long-enough-0123456789"
HOUR = 3600.0


class Fleet:
    """A secured app with its client, and tokens of every kind minted on its clock."""

    def __init__(self, app: Flask, clock: FakeClock) -> None:
        self.app = app
        self.client: FlaskClient = app.test_client()
        self.clock = clock
        self.issuer = TokenIssuer(SECRET, clock)

    def operator(
        self, role: Role = Role.OPERATOR, groups: list[str] | None = None, sub: str = "alice"
    ) -> str:
        return self.issuer.operator(sub, role, groups, HOUR)[0]

    def enrollment(self, groups: list[str] | None = None) -> str:
        return self.issuer.enrollment(groups, HOUR)[0]

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.open(path, method=method, headers=headers, **kwargs)

    def register(self, agent_id: str, group: str, token: str | None = None) -> Any:
        token = token if token is not None else self.enrollment()
        body = {"id": agent_id, "group": group}
        return self.call("POST", "/api/v1/agents/register", token, json=body)

    def enroll(self, agent_id: str, group: str = "group-a") -> str:
        """Register the agent; its agent token."""
        response = self.register(agent_id, group)
        assert response.status_code in (200, 201), response.get_data(as_text=True)
        return str(response.json["accessToken"])

    def send(self, path: str, token: str | None, **body: Any) -> Any:
        return self.call(
            "POST", f"/api/v1/agents/{path}", token, json={"type": "deep-trace", **body}
        )


@pytest.fixture
def key_file(tmp_path) -> str:
    path = tmp_path / "signing.pem"
    path.write_bytes(generate_pem())
    return str(path)


@pytest.fixture
def fleet(make_app: Callable[..., Flask], clock: FakeClock, key_file: str) -> Fleet:
    app = make_app(auth="on", token_secret=SECRET, signing_key_file=key_file)
    return Fleet(app, clock)


def commands_of(fleet: Fleet, agent_id: str) -> list[Any]:
    response = fleet.call("GET", f"/api/v1/agents/{agent_id}/commands", fleet.operator())
    assert response.status_code == 200
    return list(response.json)


# --- registration -----------------------------------------------------------------------


def test_registration_with_an_enrollment_token_answers_an_agent_token(fleet: Fleet) -> None:
    response = fleet.register("agent-1", "group-a")
    assert response.status_code == 201
    body = response.json
    claims = jwt.decode(
        body["accessToken"],
        SECRET,
        algorithms=["HS256"],
        audience="agent-registry:agent",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["sub"] == "agent-1"
    assert isinstance(claims["gen"], int)
    assert claims["exp"] - claims["iat"] == 86400
    assert body["accessTokenExpiresAt"].endswith("Z")
    assert body["serverPublicKey"]["algorithm"] == "Ed25519"
    assert body["serverPublicKeys"] == [body["serverPublicKey"]]


@pytest.mark.parametrize(
    ("groups", "status"), [(None, 201), (["group-a", "other"], 201), (["other"], 403)]
)
def test_an_enrollment_token_registers_into_its_groups_only(
    fleet: Fleet, groups: list[str] | None, status: int
) -> None:
    response = fleet.register("agent-1", "group-a", fleet.enrollment(groups))
    if status == 403:
        assert_error(response, 403, "FORBIDDEN")
        assert fleet.call("GET", "/api/v1/agents/agent-1", fleet.operator()).status_code == 404
    else:
        assert response.status_code == status


def test_renewal_with_the_agent_token_answers_a_new_one_and_retires_the_old(fleet: Fleet) -> None:
    first = fleet.enroll("agent-1")
    renewed = fleet.register("agent-1", "group-a", first)
    assert renewed.status_code == 200
    second = renewed.json["accessToken"]
    assert fleet.call("POST", "/api/v1/agents/agent-1/heartbeat", second).status_code == 204
    stale = fleet.call("POST", "/api/v1/agents/agent-1/heartbeat", first)
    assert_error(stale, 401, "UNAUTHENTICATED")
    assert_error(fleet.register("agent-1", "group-a", first), 401, "UNAUTHENTICATED")


def test_renewal_keeps_the_groups_its_enrollment_allowed(fleet: Fleet) -> None:
    token = fleet.register("agent-1", "group-a", fleet.enrollment(["group-a"])).json["accessToken"]
    assert_error(fleet.register("agent-1", "group-b", token), 403, "FORBIDDEN")
    assert fleet.register("agent-1", "group-a", token).status_code == 200


@pytest.mark.parametrize("kind", ["another agent's token", "operator token"])
def test_register_refuses_other_tokens(fleet: Fleet, kind: str) -> None:
    fleet.enroll("agent-1")
    token = (
        fleet.enroll("agent-2") if kind == "another agent's token" else fleet.operator(Role.ADMIN)
    )
    assert_error(fleet.register("agent-1", "group-a", token), 403, "FORBIDDEN")


def test_a_cloned_id_takes_the_identity_over(fleet: Fleet) -> None:
    """A cloned VM registering the same id: the other copy's next heartbeat is 401."""
    original = fleet.enroll("agent-1")
    clone = fleet.enroll("agent-1")
    assert_error(
        fleet.call("POST", "/api/v1/agents/agent-1/heartbeat", original), 401, "UNAUTHENTICATED"
    )
    assert fleet.call("POST", "/api/v1/agents/agent-1/heartbeat", clone).status_code == 204


# --- the agent's own requests -----------------------------------------------------------


def agent_requests(command_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("POST", "/api/v1/agents/agent-1/heartbeat", {}),
        ("POST", f"/api/v1/agents/agent-1/commands/{command_id}/ack", {}),
        ("GET", "/api/v1/agents/agent-1/events", {"buffered": False}),
    ]


@pytest.fixture
def enrolled(fleet: Fleet) -> tuple[str, str]:
    """agent-1 registered, with one command sent to it: (its token, the command id)."""
    token = fleet.enroll("agent-1")
    fleet.enroll("agent-2")
    command = fleet.send("agent-1/commands", fleet.operator())
    assert command.status_code == 202
    return token, command.json["commandId"]


@pytest.mark.parametrize("request_index", [0, 1, 2], ids=["heartbeat", "ack", "events"])
def test_agent_requests_need_the_agents_own_current_token(
    fleet: Fleet, enrolled: tuple[str, str], request_index: int
) -> None:
    token, command_id = enrolled
    method, path, _ = agent_requests(command_id)[request_index]
    others = {
        "another agent's": (403, "FORBIDDEN", fleet.enroll("agent-2")),
        "operator": (403, "FORBIDDEN", fleet.operator(Role.ADMIN)),
        "enrollment": (403, "FORBIDDEN", fleet.enrollment()),
        "no": (401, "UNAUTHENTICATED", None),
    }
    for status, code, other in others.values():
        assert_error(fleet.call(method, path, other), status, code)
    before = fleet.call("GET", "/api/v1/agents/agent-1", fleet.operator()).json
    assert commands_of(fleet, "agent-1")[0]["status"] == "PENDING"  # no ack was recorded
    assert before["lastHeartbeatAt"] == before["registeredAt"]  # no heartbeat was recorded
    if method == "GET":
        response = fleet.call(method, path, token, buffered=False)
        assert response.status_code == 200
        response.close()
    else:
        assert fleet.call(method, path, token).status_code in (200, 204)


# --- operators ---------------------------------------------------------------------------


READS = [
    "/api/v1/agents",
    "/api/v1/agents/agent-1",
    "/api/v1/agents/agent-1/commands",
    "/api/v1/server",
]


@pytest.mark.parametrize("path", READS)
def test_reads_need_an_operator_token_of_any_role(
    fleet: Fleet, enrolled: tuple[str, str], path: str
) -> None:
    agent_token, command_id = enrolled
    for role in Role:
        assert fleet.call("GET", path, fleet.operator(role, ["elsewhere"])).status_code == 200
    assert (
        fleet.call("GET", f"/api/v1/commands/{command_id}", fleet.operator(Role.VIEWER)).status_code
        == 200
    )
    assert_error(fleet.call("GET", path, agent_token), 403, "FORBIDDEN")
    assert_error(fleet.call("GET", path, fleet.enrollment()), 403, "FORBIDDEN")
    assert_error(fleet.call("GET", path), 401, "UNAUTHENTICATED")


@pytest.mark.parametrize(
    ("path", "scope"),
    [
        ("agent-1/commands", ["group-a"]),
        ("groups/group-a/commands", ["group-a"]),
        ("commands", None),
    ],
    ids=["one agent", "a group", "all"],
)
def test_sending_needs_role_operator_or_admin_and_the_targets_group(
    fleet: Fleet, path: str, scope: list[str] | None
) -> None:
    fleet.enroll("agent-1", "group-a")
    refused = [
        fleet.operator(Role.VIEWER, scope),
        fleet.operator(Role.OPERATOR, ["group-b"]),
        fleet.enrollment(),
        fleet.enroll("agent-2", "group-a"),
    ]
    for token in refused:
        assert_error(fleet.send(path, token), 403, "FORBIDDEN")
    assert commands_of(fleet, "agent-1") == []  # a refused send created nothing
    assert_error(fleet.send(path, None), 401, "UNAUTHENTICATED")
    for role in (Role.OPERATOR, Role.ADMIN):
        assert fleet.send(path, fleet.operator(role, scope)).status_code == 202


def test_sending_to_all_needs_every_group(fleet: Fleet) -> None:
    fleet.enroll("agent-1", "group-a")
    token = fleet.operator(Role.ADMIN, ["group-a"])
    assert_error(fleet.send("commands", token), 403, "FORBIDDEN")


def test_a_scoped_operator_cannot_learn_whether_an_agent_exists(fleet: Fleet) -> None:
    """403 for an unknown agent too, unless the token reaches every group (then 404)."""
    scoped = fleet.operator(Role.OPERATOR, ["group-a"])
    assert_error(fleet.send("ghost/commands", scoped), 403, "FORBIDDEN")
    assert_error(fleet.send("ghost/commands", fleet.operator()), 404, "AGENT_NOT_FOUND")


def test_a_command_records_who_sent_it(fleet: Fleet) -> None:
    fleet.enroll("agent-1")
    sent = fleet.send("agent-1/commands", fleet.operator(sub="bob@example.com"))
    assert sent.json["createdBy"] == "bob@example.com"
    read = fleet.call("GET", f"/api/v1/commands/{sent.json['commandId']}", fleet.operator())
    assert read.json["createdBy"] == "bob@example.com"


def test_enrollment_tokens_over_the_api_are_for_admins(fleet: Fleet) -> None:
    path = "/api/v1/tokens/enrollment"
    body = {"groups": ["group-a"], "ttlSeconds": 600}
    for role in (Role.VIEWER, Role.OPERATOR):
        assert_error(fleet.call("POST", path, fleet.operator(role), json=body), 403, "FORBIDDEN")
    created = fleet.call("POST", path, fleet.operator(Role.ADMIN), json=body)
    assert created.status_code == 201
    token = created.json["token"]
    assert fleet.register("agent-1", "group-a", token).status_code == 201
    assert_error(fleet.register("agent-2", "group-b", token), 403, "FORBIDDEN")
    fleet.clock.advance(601 + 30)
    assert_error(fleet.register("agent-3", "group-a", token), 401, "TOKEN_EXPIRED")


def test_enrollment_tokens_default_to_every_group_for_thirty_days(fleet: Fleet) -> None:
    created = fleet.call("POST", "/api/v1/tokens/enrollment", fleet.operator(Role.ADMIN), json={})
    assert created.status_code == 201
    claims = jwt.decode(
        created.json["token"],
        SECRET,
        algorithms=["HS256"],
        audience="agent-registry:enroll",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["groups"] == ["*"]
    assert claims["exp"] - claims["iat"] == 30 * 86400


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"])
def test_operations_endpoints_never_need_a_token(fleet: Fleet, path: str) -> None:
    assert fleet.call("GET", path).status_code == 200
    assert fleet.call("GET", path, "not-a-token").status_code == 200


# --- bad tokens ---------------------------------------------------------------------------


def _forged(fleet: Fleet, kind: str) -> tuple[str, dict[str, str]]:
    """A token of each bad kind, and headers to send it with (or without)."""
    now = fleet.clock()
    claims = {"sub": "alice", "role": "admin", "aud": "agent-registry:operator", "exp": now + 60}
    if kind == "expired":
        claims["exp"] = now - 31
    if kind == "wrong audience":
        claims["aud"] = "someone-else"
    if kind == "not yet valid":
        claims["nbf"] = now + 31
    if kind == "no expiry":
        del claims["exp"]
    if kind == "wrong key":
        return jwt.encode(claims, "another-secret-that-is-long-enough-000000"), {}
    if kind == "alg none":
        return jwt.encode(claims, None, algorithm="none"), {}
    if kind == "garbage":
        return "garbage.garbage.garbage", {}
    if kind == "EdDSA without a provider key":
        private = Ed25519PrivateKey.generate()
        return jwt.encode(claims, private, algorithm="EdDSA"), {}
    token = jwt.encode(claims, SECRET)
    if kind == "in the query string":
        return "", {"query": f"access_token={token}"}
    if kind == "not bearer":
        return "", {"Authorization": f"Basic {token}"}
    return token, {}


BAD_TOKENS = [
    "wrong audience",
    "not yet valid",
    "no expiry",
    "wrong key",
    "alg none",
    "garbage",
    "EdDSA without a provider key",
    "in the query string",
    "not bearer",
]


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_a_bad_token_is_401_with_a_bearer_challenge(fleet: Fleet, kind: str) -> None:
    token, extra = _forged(fleet, kind)
    query = extra.pop("query", None)
    path = "/api/v1/agents" + (f"?{query}" if query else "")
    response = fleet.call("GET", path, token or None, headers=extra)
    assert_error(response, 401, "UNAUTHENTICATED")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_an_expired_token_is_401_token_expired(fleet: Fleet) -> None:
    token, _ = _forged(fleet, "expired")
    response = fleet.call("GET", "/api/v1/agents", token)
    assert_error(response, 401, "TOKEN_EXPIRED")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_leeway_is_thirty_seconds(fleet: Fleet) -> None:
    token = fleet.issuer.operator("alice", Role.VIEWER, None, 60)[0]
    fleet.clock.advance(60 + 29)
    assert fleet.call("GET", "/api/v1/agents", token).status_code == 200
    fleet.clock.advance(2)
    assert_error(fleet.call("GET", "/api/v1/agents", token), 401, "TOKEN_EXPIRED")


def test_refusals_are_counted_by_reason(fleet: Fleet) -> None:
    fleet.call("GET", "/api/v1/agents")
    fleet.call("GET", "/api/v1/agents", "garbage")
    fleet.call("GET", "/api/v1/agents", fleet.enrollment())
    text = fleet.call("GET", "/metrics").get_data(as_text=True)
    for reason in ("missing", "invalid", "forbidden"):
        assert f'agent_registry_auth_failures_total{{reason="{reason}"}} 1.0' in text


# --- precedence ----------------------------------------------------------------------------


def test_authentication_comes_before_every_other_check(fleet: Fleet) -> None:
    fleet.enroll("agent-1")
    for headers, kwargs in [
        ({"X-Protocol-Version": "9"}, {"json": {"type": "deep-trace"}}),
        ({}, {"data": "x", "content_type": "text/plain"}),
        ({}, {"json": {"type": "nope"}}),
        ({}, {"data": b"{" * 70_000, "content_type": "application/json"}),
    ]:
        response = fleet.call(
            "POST", "/api/v1/agents/agent-1/commands", None, headers=headers, **kwargs
        )
        assert_error(response, 401, "UNAUTHENTICATED")
    assert_error(fleet.call("GET", "/api/v1/no-such-thing"), 401, "UNAUTHENTICATED")
    assert_error(fleet.call("GET", "/api/v1/no-such-thing", fleet.operator()), 404, "NOT_FOUND")


def test_the_scope_check_comes_after_validation_and_before_existence(fleet: Fleet) -> None:
    viewer = fleet.operator(Role.VIEWER)
    assert_error(
        fleet.call("POST", "/api/v1/agents/ghost/commands", viewer, json={"type": "nope"}),
        400,
        "VALIDATION_FAILED",
        ["type"],
    )
    assert_error(fleet.send("ghost/commands", viewer), 403, "FORBIDDEN")
    assert_error(fleet.send("groups/nobody/commands", fleet.operator()), 404, "NO_LIVE_TARGETS")


# --- identity providers, ephemeral keys and start-up ------------------------------------


def test_operator_tokens_from_an_identity_provider_key(
    make_app: Callable[..., Flask], clock: FakeClock, key_file: str, tmp_path
) -> None:
    provider = Ed25519PrivateKey.generate()
    public = tmp_path / "provider.pem"
    public.write_bytes(
        provider.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    app = make_app(
        auth="on",
        token_secret=SECRET,
        signing_key_file=key_file,
        operator_public_key_file=str(public),
    )
    fleet = Fleet(app, clock)
    claims = {"aud": "agent-registry:operator", "sub": "idp-user", "role": "viewer"}
    operator = jwt.encode({**claims, "exp": clock() + 60}, provider, algorithm="EdDSA")
    assert fleet.call("GET", "/api/v1/agents", operator).status_code == 200
    # The provider's key is good for operator tokens only.
    enrollment = jwt.encode(
        {"aud": "agent-registry:enroll", "exp": clock() + 60}, provider, algorithm="EdDSA"
    )
    assert_error(fleet.register("agent-1", "group-a", enrollment), 401, "UNAUTHENTICATED")
    # A token naming another algorithm than the provider key's was a 500 (PyJWT TypeError).
    other = rsa.generate_private_key(65537, 2048)
    for algorithm, key in (("RS256", other), ("HS256", SECRET * 2)):
        forged = jwt.encode({**claims, "exp": clock() + 60}, key, algorithm=algorithm)
        assert_error(fleet.call("GET", "/api/v1/agents", forged), 401, "UNAUTHENTICATED")


def test_auth_off_answers_as_v1_and_issues_no_tokens(api, client: FlaskClient) -> None:
    registered = api.register("agent-1")
    assert "accessToken" not in registered.json
    sent = api.send("agent-1/commands")
    assert sent.json["createdBy"] is None
    response = client.post("/api/v1/tokens/enrollment", json={})
    assert_error(response, 404, "NOT_FOUND")
    server = client.get("/api/v1/server").json
    assert (server["auth"], server["signing"]) == ("off", None)


def test_the_server_says_auth_is_on_and_which_key_signs(fleet: Fleet) -> None:
    server = fleet.call("GET", "/api/v1/server", fleet.operator(Role.VIEWER)).json
    key = fleet.register("agent-1", "group-a").json["serverPublicKey"]
    assert server["auth"] == "on"
    assert server["signing"] == {"keyId": key["keyId"]}


@pytest.mark.parametrize("path", ["/api/v1/agents/register", "/api/v1/agents/agent-1/commands"])
def test_options_needs_a_token_and_no_permission(fleet: Fleet, path: str) -> None:
    assert_error(fleet.call("OPTIONS", path), 401, "UNAUTHENTICATED")
    answered = fleet.call("OPTIONS", path, fleet.operator(Role.VIEWER))
    assert answered.status_code == 200 and "POST" in answered.headers["Allow"]


# --- regressions from the review of the first version ------------------------------------


def test_a_retired_agent_token_is_401_before_any_other_check(fleet: Fleet) -> None:
    """A retired token passed the signature check, and views found it too late: an ack
    with a bad media type answered 415 instead of 401."""
    retired = fleet.enroll("agent-1")
    fleet.enroll("agent-1")  # another copy takes the id over
    command = fleet.send("agent-1/commands", fleet.operator()).json["commandId"]
    ack = f"/api/v1/agents/agent-1/commands/{command}/ack"
    for kwargs in [
        {"data": "x", "content_type": "text/plain"},
        {"json": {"status": "maybe"}},
        {"json": {}, "headers": {"X-Protocol-Version": "9"}},
    ]:
        assert_error(fleet.call("POST", ack, retired, **kwargs), 401, "UNAUTHENTICATED")
    renewal = {"id": "agent-1", "group": "group-a", "bogus": 1}
    response = fleet.call("POST", "/api/v1/agents/register", retired, json=renewal)
    assert_error(response, 401, "UNAUTHENTICATED")


def test_an_admin_limited_to_groups_enrolls_into_those_groups_only(fleet: Fleet) -> None:
    """A group-limited admin could mint enrollment tokens for every group."""
    admin = fleet.operator(Role.ADMIN, ["group-a"])
    path = "/api/v1/tokens/enrollment"
    for groups in (["*"], ["group-a", "group-b"]):
        response = fleet.call("POST", path, admin, json={"groups": groups})
        assert_error(response, 403, "FORBIDDEN")
    created = fleet.call("POST", path, admin, json={"groups": ["group-a"]})
    assert created.status_code == 201
    claims = jwt.decode(
        created.json["token"],
        SECRET,
        algorithms=["HS256"],
        audience="agent-registry:enroll",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["sub"] == "alice"  # who made it


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": 10**400},
        {"exp": float("nan")},
        {"aud": ["agent-registry:operator", [1]]},
    ],
    ids=["exp too large", "exp NaN", "aud holding a list"],
)
def test_signed_claims_of_the_wrong_shape_are_401_not_500(fleet: Fleet, claims: dict) -> None:
    token = jwt.encode(
        {"sub": "alice", "role": "admin", "aud": "agent-registry:operator", **claims}, SECRET
    )
    assert_error(fleet.call("GET", "/api/v1/agents", token), 401, "UNAUTHENTICATED")


def test_a_huge_algorithm_name_is_not_echoed(fleet: Fleet) -> None:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "A" * 6000}).encode()).rstrip(b"=")
    response = fleet.call("GET", "/api/v1/agents", header.decode() + ".e30.c2ln")
    assert_error(response, 401, "UNAUTHENTICATED")
    assert len(response.headers["WWW-Authenticate"]) < 300

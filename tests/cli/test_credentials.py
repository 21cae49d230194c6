"""`token create` and `key generate`: offline, with the secret from the environment."""

from __future__ import annotations

import time

import jwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent_registry.cli.main import main

SECRET = "s" * 32


def run(*args: str, secret: str | None = SECRET):
    env = {"AGENT_REGISTRY_TOKEN_SECRET": secret}
    return CliRunner().invoke(main, list(args), env=env, prog_name="agent-registry")


def claims(token: str, audience: str) -> dict:
    return jwt.decode(token, SECRET, algorithms=["HS256"], audience=audience)


def test_an_operator_token_carries_its_sub_role_groups_and_lifetime():
    before = int(time.time())

    result = run(
        "token", "create", "--kind", "operator", "--sub", "alice", "--role", "operator",
        "--groups", "orders,payments", "--ttl", "8h",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert result.stdout == token + "\n"  # the token alone, for $(...)
    found = claims(token, "agent-registry:operator")
    assert found["sub"] == "alice"
    assert found["role"] == "operator"
    assert found["groups"] == ["orders", "payments"]
    assert before <= found["iat"] <= int(time.time())
    assert found["exp"] - found["iat"] == 8 * 3600
    assert found["jti"]
    assert result.stderr.startswith("Operator token; expires at ")


def test_an_enrollment_token_defaults_to_every_group_for_30_days():
    result = run("token", "create", "--kind", "enrollment")

    assert result.exit_code == 0, result.output
    found = claims(result.stdout.strip(), "agent-registry:enroll")
    assert found["groups"] == ["*"]
    assert found["exp"] - found["iat"] == 30 * 86400
    assert "sub" not in found


def test_an_operator_token_defaults_to_every_group_for_8_hours():
    result = run("token", "create", "--sub", "bob", "--role", "viewer")

    found = claims(result.stdout.strip(), "agent-registry:operator")
    assert (found["role"], found["groups"]) == ("viewer", ["*"])
    assert found["exp"] - found["iat"] == 8 * 3600


@pytest.mark.parametrize(
    ("ttl", "seconds"), [("30s", 30), ("15m", 900), ("8h", 28800), ("30d", 2592000)]
)
def test_durations(ttl, seconds):
    result = run("token", "create", "--kind", "enrollment", "--groups", "g", "--ttl", ttl)

    found = claims(result.stdout.strip(), "agent-registry:enroll")
    assert found["exp"] - found["iat"] == seconds
    assert found["groups"] == ["g"]


@pytest.mark.parametrize("ttl", ["8", "0h", "-1h", "1w", "1.5h", "h"])
def test_a_duration_without_a_known_unit_is_a_usage_error(ttl):
    result = run("token", "create", "--kind", "enrollment", "--ttl", ttl)

    assert result.exit_code == 2
    assert "is not a duration such as 30s, 15m, 8h or 30d" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "admin"], "An operator token needs --sub NAME and --role ROLE."),
        (["--sub", "alice"], "An operator token needs --sub NAME and --role ROLE."),
        (["--kind", "enrollment", "--role", "admin"], "--role applies to operator tokens only."),
        (["--sub", "a", "--role", "root"], "'root' is not one of 'viewer', 'operator', 'admin'"),
        (["--sub", "a", "--role", "admin", "--groups", " , "], "name at least one group"),
    ],
)
def test_wrong_options_are_usage_errors(args, message):
    result = run("token", "create", *args)

    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("secret", "sentence"),
    [
        (None, "Error: AGENT_REGISTRY_TOKEN_SECRET is not set; set it to the server's token "
               "secret.\n"),
        ("", "Error: AGENT_REGISTRY_TOKEN_SECRET is not set; set it to the server's token "
             "secret.\n"),
        ("x" * 31, "Error: AGENT_REGISTRY_TOKEN_SECRET is shorter than 32 bytes; use the "
                   "server's token secret.\n"),
    ],
)  # fmt: skip
def test_a_missing_or_short_secret_is_one_sentence_and_exit_2(secret, sentence):
    result = run("token", "create", "--sub", "alice", "--role", "admin", secret=secret)

    assert result.exit_code == 2
    assert result.stderr == sentence
    assert result.stdout == ""


def test_the_secret_counts_bytes_not_characters():
    result = run("token", "create", "--kind", "enrollment", secret="é" * 16)  # 32 bytes

    assert result.exit_code == 0, result.output


def test_key_generate_prints_a_new_ed25519_pkcs8_pem():
    first = run("key", "generate", secret=None)
    second = run("key", "generate", secret=None)

    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("-----BEGIN PRIVATE KEY-----\n")
    assert first.stdout.endswith("-----END PRIVATE KEY-----\n")
    key = serialization.load_pem_private_key(first.stdout.encode(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    assert first.stdout != second.stdout


def test_a_generated_key_is_what_the_server_loads(tmp_path):
    from agent_registry.security.signing import load_keys

    path = tmp_path / "signing.pem"
    path.write_text(run("key", "generate").stdout + run("key", "generate").stdout)

    assert len(load_keys(str(path))) == 2

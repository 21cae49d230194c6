"""``token create`` and ``key generate``: the credentials a secured deployment needs.

Both work offline. ``token create`` signs with the server's secret (read from the
environment, never from an option, so it stays out of shell history and ``ps``).
"""

from __future__ import annotations

import os
import re

import click

from ..clock import iso, system_clock
from ..config import MIN_SECRET_BYTES
from ..security.signing import generate_pem
from ..security.tokens import ALL_GROUPS, Role, TokenIssuer
from .exits import EXIT_USAGE, Failure

SECRET_VARIABLE = "AGENT_REGISTRY_TOKEN_SECRET"
DEFAULT_TTL_SECONDS = {"operator": 8 * 3600, "enrollment": 30 * 86400}


_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"([1-9][0-9]*)([smhd])")


def duration(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """``30s``, ``15m``, ``8h`` or ``30d``, as seconds."""
    if value is None:
        return None
    found = _DURATION.fullmatch(value.strip())
    if found is None:
        raise click.BadParameter(f"'{value}' is not a duration such as 30s, 15m, 8h or 30d.")
    return int(found.group(1)) * _UNIT_SECONDS[found.group(2)]


def _groups(ctx: click.Context, param: click.Parameter, value: str) -> list[str] | None:
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise click.BadParameter("name at least one group, or '*' for every group.")
    return None if ALL_GROUPS in names else names


def secret_from_environment() -> str:
    secret = os.environ.get(SECRET_VARIABLE, "")
    if not secret:
        raise Failure(
            f"{SECRET_VARIABLE} is not set; set it to the server's token secret.", EXIT_USAGE
        )
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise Failure(
            f"{SECRET_VARIABLE} is shorter than {MIN_SECRET_BYTES} bytes; "
            "use the server's token secret.",
            EXIT_USAGE,
        )
    return secret


@click.group()
def token() -> None:
    """Mint tokens with the server's secret (AGENT_REGISTRY_TOKEN_SECRET)."""


@token.command("create")
@click.option(
    "--kind",
    type=click.Choice(["operator", "enrollment"]),
    default="operator",
    show_default=True,
    help="operator (for people and scripts) or enrollment (for agents to register).",
)
@click.option("--sub", metavar="NAME", help="Who holds it (required for operator tokens).")
@click.option(
    "--role",
    type=click.Choice([role.value for role in Role]),
    help="An operator token's role (required for operator tokens).",
)
@click.option(
    "--groups",
    default=ALL_GROUPS,
    show_default=True,
    callback=_groups,
    metavar="A,B",
    help="The groups it may reach (operator) or register into (enrollment); * for all.",
)
@click.option(
    "--ttl",
    callback=duration,
    metavar="DURATION",
    help="Lifetime, e.g. 30s, 15m, 8h, 30d [default: 8h for operator, 30d for enrollment].",
)
def create_token(
    kind: str, sub: str | None, role: str | None, groups: list[str] | None, ttl: int | None
) -> None:
    """Print a new token on stdout (its expiry goes to stderr)."""
    if kind == "operator" and not (sub and role):
        raise click.UsageError("An operator token needs --sub NAME and --role ROLE.")
    if kind == "enrollment" and role is not None:
        raise click.UsageError("--role applies to operator tokens only.")
    lifetime = ttl or DEFAULT_TTL_SECONDS[kind]
    issuer = TokenIssuer(secret_from_environment(), system_clock)
    if kind == "operator":
        assert sub is not None and role is not None  # checked above
        minted, expires_at = issuer.operator(sub, Role(role), groups, lifetime)
    else:
        minted, expires_at = issuer.enrollment(groups, lifetime, subject=sub)
    click.echo(minted)
    click.echo(f"{kind.capitalize()} token; expires at {iso(expires_at)}.", err=True)


@click.group()
def key() -> None:
    """Signing keys for command events."""


@key.command("generate")
def generate_key() -> None:
    """Print a new Ed25519 private key (PKCS#8 PEM) for AGENT_REGISTRY_SIGNING_KEY_FILE."""
    click.echo(generate_pem().decode(), nl=False)

"""In-process cost of one heartbeat and one ack through the request pipeline, no HTTP.

``python -m bench.pipeline_cost`` calls the WSGI app directly with a minimal environ, with
the fast views on and with every request sent through Flask (``fast_paths=False``), and
prints microseconds of this process's CPU per call. It isolates what the app adds to a
request from what the HTTP server costs, which ``make bench`` measures as a whole. Each
figure is taken with metrics on and off (``AGENT_REGISTRY_METRICS``); ``--multiprocess``
sets ``PROMETHEUS_MULTIPROC_DIR`` to a temporary directory first, so metrics write to files
as under gunicorn.

With auth on (``--auth on``, or ``both``, the default) the agents register with an
enrollment token and every heartbeat and ack carries the agent's own token, as under
``make bench``. Two figures per heartbeat: the **first use** of each token (the server
verifies it with PyJWT; fresh tokens are minted before each round, outside the timing) and
the **steady state** (each agent re-sends a token already verified: the verifier's cache).
The first use is measured with auth off too (the first heartbeat of each agent in a round),
so that on ÷ off compares like with like. Auth off and on take turns in blocks of calls,
and each figure is the median of ``--rounds``, so that load elsewhere on the machine meets
both alike. ``TokenVerifier.verify`` is also timed alone, cached and uncached.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask

from agent_registry import create_app
from agent_registry.clock import system_clock
from agent_registry.security.signing import generate_pem
from agent_registry.security.tokens import Role, TokenIssuer, TokenVerifier

log = logging.getLogger("bench")

HEARTBEATS = 20_000
ACKS = 3_000
AGENTS = 2_000  # distinct agents (and tokens): the first-use figure is one heartbeat each
GROUP = "g"
SECRET = "pipeline-cost-secret-" + "x" * 32  # >= 32 bytes, as the setting requires
TOKEN_TTL = 3600.0
BLOCK = 500  # calls per turn when auth off and on take turns


def _environ(path: str, token: str | None = None) -> dict[str, Any]:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "CONTENT_LENGTH": "0",
    }
    if token is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return environ


def _check(status: str, _headers: Any, _exc_info: Any = None) -> None:
    if not status.startswith("2"):
        raise RuntimeError(f"the app answered {status}: the figures would not be a heartbeat's")


def _interleaved(
    apps: dict[bool, Callable[..., Any]], calls: dict[bool, list[tuple[str, str | None]]]
) -> dict[bool, float]:
    """Microseconds of this process's CPU per call, for each app (auth off / on) of ``apps``.

    The apps take turns in blocks of ``BLOCK`` calls, so that other work on the machine,
    which still slows this process's CPU (shared caches, a shared host), meets both alike.
    CPU time, not wall time: time the process spent waiting for a core does not count.
    Building the environ counts.
    """
    spent = dict.fromkeys(apps, 0.0)
    longest = max(len(c) for c in calls.values())
    for start in range(0, longest, BLOCK):
        for auth, app in apps.items():
            block = calls[auth][start : start + BLOCK]
            began = time.process_time()
            for path, token in block:
                for _ in app(_environ(path, token), _check):
                    pass
            spent[auth] += time.process_time() - began
    return {auth: spent[auth] / len(calls[auth]) * 1e6 for auth in apps}


def _agent_ids() -> list[str]:
    return [f"a-{i:06d}" for i in range(AGENTS)]


@dataclass
class Subject:
    """One app and its registered agents, with the tokens its next round sends."""

    app: Flask
    auth: bool
    tokens: dict[str, str | None] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    issuer: TokenIssuer | None = None
    operator: dict[str, str] = field(default_factory=dict)  # headers that send commands

    @property
    def wsgi(self) -> Callable[..., Any]:
        return self.app.wsgi_app

    def fresh_commands(self, agent_id: str) -> None:
        """``ACKS`` new commands to ``agent_id``, each with a delivery still to acknowledge."""
        client = self.app.test_client()
        self.commands.clear()
        for _ in range(ACKS):
            sent = client.post(
                f"/api/v1/agents/{agent_id}/commands",
                json={"type": "replay"},
                headers=self.operator,
            )
            if sent.status_code != 202 or sent.json is None:
                raise RuntimeError(f"sending a command answered {sent.status_code}")
            self.commands.append(sent.json["commandId"])

    def fresh_tokens(self) -> None:
        """New agent tokens (same agent, same gen, a new ``jti``): none is in the cache yet."""
        if self.issuer is None:
            return
        store = self.app.extensions["agent_registry"].registry.store
        for agent_id in self.tokens:
            generation = store.get(agent_id).generation
            self.tokens[agent_id], _ = self.issuer.agent(
                agent_id, generation, frozenset({GROUP}), TOKEN_TTL
            )


def subject(fast: bool, metrics: bool, auth: bool, key_file: Path) -> Subject:
    config: dict[str, Any] = {
        "AGENT_REGISTRY_METRICS": "on" if metrics else "off",
        # A round through Flask on a busy machine can outlast the default 60 s: an expired
        # command's ack is a 409, not the ack measured here.
        "AGENT_REGISTRY_COMMAND_EXPIRY_SECONDS": 3600,
    }
    if auth:
        config.update(
            AGENT_REGISTRY_AUTH="on",
            AGENT_REGISTRY_TOKEN_SECRET=SECRET,
            AGENT_REGISTRY_SIGNING_KEY_FILE=str(key_file),
        )
    app = create_app(config, fast_paths=fast)
    client = app.test_client()
    issuer = TokenIssuer(SECRET, system_clock) if auth else None
    enroll: dict[str, str] = {}
    operator: dict[str, str] = {}
    if issuer is not None:
        enroll = {"Authorization": f"Bearer {issuer.enrollment([GROUP], TOKEN_TTL)[0]}"}
        admin, _ = issuer.operator("pipeline-cost", Role.ADMIN, None, TOKEN_TTL)
        operator = {"Authorization": f"Bearer {admin}"}
    out = Subject(app, auth, issuer=issuer)
    for agent_id in _agent_ids():
        answer = client.post(
            "/api/v1/agents/register", json={"id": agent_id, "group": GROUP}, headers=enroll
        )
        if answer.status_code != 201 or answer.json is None:
            raise RuntimeError(f"registering {agent_id} answered {answer.status_code}")
        out.tokens[agent_id] = answer.json.get("accessToken")
    out.operator = operator
    return out


def one_round(subjects: list[Subject], heartbeats: int) -> dict[bool, dict[str, float]]:
    """Fresh tokens and commands for every subject, then each figure, interleaved."""
    apps = {s.auth: s.wsgi for s in subjects}
    first: dict[bool, list[tuple[str, str | None]]] = {}
    steady: dict[bool, list[tuple[str, str | None]]] = {}
    acks: dict[bool, list[tuple[str, str | None]]] = {}
    for s in subjects:
        s.fresh_tokens()
        agents = list(s.tokens)
        s.fresh_commands(agents[0])
        per_agent = [(f"/api/v1/agents/{a}/heartbeat", s.tokens[a]) for a in agents]
        first[s.auth] = per_agent  # auth on: every token's first verification
        steady[s.auth] = [per_agent[i % len(per_agent)] for i in range(heartbeats)]
        acks[s.auth] = [
            (f"/api/v1/agents/{agents[0]}/commands/{cid}/ack", s.tokens[agents[0]])
            for cid in s.commands
        ]
    figures = {
        "heartbeat_first_us": _interleaved(apps, first),
        "heartbeat_us": _interleaved(apps, steady),
        "ack_without_body_us": _interleaved(apps, acks),
    }
    return {auth: {name: f[auth] for name, f in figures.items()} for auth in apps}


def measure(
    fast: bool, metrics: bool, auths: Iterable[bool], rounds: int, key_file: Path
) -> dict[bool, dict[str, float]]:
    """Median per figure over ``rounds``, auth off and on interleaved within each round."""
    subjects = [subject(fast, metrics, auth, key_file) for auth in auths]
    # Through Flask a call costs ~10x a fast view's: fewer calls give the same precision.
    heartbeats = HEARTBEATS if fast else HEARTBEATS // 5
    runs = [one_round(subjects, heartbeats) for _ in range(rounds)]
    return {
        auth: {name: statistics.median(run[auth][name] for run in runs) for name in runs[0][auth]}
        for auth in runs[0]
    }


def verifier_alone(count: int = AGENTS) -> dict[str, float]:
    """``TokenVerifier.verify`` by itself: a token's first use (PyJWT) and a repeat (cache)."""
    issuer = TokenIssuer(SECRET, system_clock)
    verifier = TokenVerifier(SECRET, system_clock)
    tokens = [issuer.agent(f"a-{i:06d}", 1, frozenset({GROUP}), TOKEN_TTL)[0] for i in range(count)]
    started = time.process_time()
    for token in tokens:
        verifier.verify(token)
    first = (time.process_time() - started) / count * 1e6
    repeats = tokens * 10
    started = time.process_time()
    for token in repeats:
        verifier.verify(token)
    cached = (time.process_time() - started) / len(repeats) * 1e6
    return {"first_us": first, "cached_us": cached}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pipeline_cost",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--multiprocess",
        action="store_true",
        help="metrics in prometheus_client's multiprocess mode (files), as under gunicorn",
    )
    parser.add_argument(
        "--auth",
        choices=("off", "on", "both"),
        default="both",
        help="measure with AGENT_REGISTRY_AUTH off, on, or both (default)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds per figure; the median is printed"
    )
    parser.add_argument(
        "--path",
        choices=("fast", "flask", "both"),
        default="both",
        help="the fast views, every request through Flask (slow), or both (default)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")  # the app's lines: quiet
    log.setLevel(logging.INFO)
    if args.multiprocess:
        # Before anything imports prometheus_client: it picks its value class on import.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pipeline-cost-")
    auths = {"off": [False], "on": [True], "both": [False, True]}[args.auth]
    key_file = Path(tempfile.mkdtemp(prefix="pipeline-cost-key-")) / "signing-key.pem"
    key_file.write_bytes(generate_pem())
    log.info(
        "µs of CPU per call, median of %d rounds; %s agents, %s heartbeats (%s through "
        "Flask), %s acks per round",
        args.rounds,
        f"{AGENTS:,}",
        f"{HEARTBEATS:,}",
        f"{HEARTBEATS // 5:,}",
        f"{ACKS:,}",
    )
    for fast in {"fast": (True,), "flask": (False,), "both": (True, False)}[args.path]:
        for metrics in (True, False):
            figures = measure(fast, metrics, auths, args.rounds, key_file)
            path = "fast views" if fast else "through Flask"
            for auth, f in figures.items():
                log.info(
                    "%-13s  metrics %-3s  auth %-3s  heartbeat %6.1f us (first per agent "
                    "%6.1f us)  ack (no body) %6.1f us",
                    path,
                    "on" if metrics else "off",
                    "on" if auth else "off",
                    f["heartbeat_us"],
                    f["heartbeat_first_us"],
                    f["ack_without_body_us"],
                )
            if len(figures) == 2:
                on, off = figures[True], figures[False]
                log.info(
                    "%-13s  metrics %-3s  auth on ÷ off: heartbeat %.2fx (+%.1f us), first "
                    "use of a token %.2fx (+%.1f us), ack %.2fx",
                    path,
                    "on" if metrics else "off",
                    on["heartbeat_us"] / off["heartbeat_us"],
                    on["heartbeat_us"] - off["heartbeat_us"],
                    on["heartbeat_first_us"] / off["heartbeat_first_us"],
                    on["heartbeat_first_us"] - off["heartbeat_first_us"],
                    on["ack_without_body_us"] / off["ack_without_body_us"],
                )
    if args.auth != "off":
        alone = verifier_alone()
        log.info(
            "TokenVerifier.verify alone: first use of a token %.1f us, cached %.2f us",
            alone["first_us"],
            alone["cached_us"],
        )


if __name__ == "__main__":
    main()

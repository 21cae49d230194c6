"""The scenarios: each measurement gets a fresh server and one load-generator process.

a. idle streams      b. fan-out with acks      c. heartbeats
d. sweeps (in-process on the core)              e. Redis store, 2 workers: b and c again
f. b and c on memory (1 worker) and Redis (2 workers) at once, alternated in blocks

Every figure of the real server is measured beside the floor app (``floor_app.py``) in the
same run, alternating floor / real so that background load hits both alike.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_registry.clock import system_clock
from agent_registry.security.signing import generate_pem
from agent_registry.security.tokens import TokenIssuer
from harness.gunicorn import GunicornServer
from harness.process import ROOT, ServerUnavailable
from harness.redis_server import RedisServer

from .figures import AUTH_ON, METRICS_OFF

APPS = ("floor", "real")
# The real server again with AGENT_REGISTRY_METRICS=off, in the same run, for b and c: what
# metrics cost is the ratio of the two real-server figures (targets.py).
METRICS_OFF_ENV = {"AGENT_REGISTRY_METRICS": "off"}
# c also runs the real server with AGENT_REGISTRY_AUTH=on (AUTH_ON): agents register with an
# enrollment token and heartbeat with their own tokens; auth on ÷ "real" (auth off) is what
# authentication costs (targets.py).
AUTH_GROUP = "bench"

log = logging.getLogger("bench")


@dataclass
class Params:
    """Everything a run depends on; written verbatim into latest.json."""

    streams: list[int] = field(default_factory=lambda: [1000, 5000, 10000])
    max_streams: bool = True
    broadcasts: int = 5
    ack_connections: int = 64
    # inline: each event is acked on receipt (acks compete with the next broadcast);
    # after: acks are sent once every broadcast was delivered; none: no acks.
    ack_mode: str = "inline"
    register_connections: int = 64
    open_concurrency: int = 256
    heartbeat_agents: int = 1000
    heartbeat_connections: int = 64
    heartbeat_seconds: float = 10.0
    heartbeat_warmup_seconds: float = 1.0
    sweep_agents: int = 100_000
    sweep_deliveries: int = 100_000
    sweep_quiet_repeats: int = 1000
    sweep_due_steps: int = 10
    redis_workers: int = 2
    redis_streams: list[int] = field(default_factory=lambda: [10000])
    # f: each side's fleet, and how its blocks alternate (load_scenarios/paired.py).
    pair_streams: int = 2000
    pair_rounds: int = 10
    pair_broadcasts_per_block: int = 3
    pair_heartbeat_rounds: int = 10
    pair_heartbeat_block_seconds: float = 1.0
    payload: dict[str, Any] = field(
        default_factory=lambda: {"durationSeconds": 60, "routeIds": ["route-a", "route-b"]}
    )
    settle_seconds: float = 1.0
    # a: the largest N and the max probe keep their streams open this long, past the
    # server's 15 s keepalive, so "held" means "survived an idle ping".
    hold_seconds: float = 18.0
    server_log_level: str = "info"
    source_address_every: int = 15_000


def run_loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    """One load-generator process; its JSON result (or an ``error``)."""
    bound = spec["overall_timeout_s"] + 30
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.loadgen"],
            input=json.dumps(spec),
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=bound,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"load generator did not finish within {bound} s"}
    if done.stderr.strip():
        log.warning("load generator stderr:\n%s", done.stderr.rstrip())
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"error": f"load generator exited {done.returncode}: {done.stderr[-2000:]}"}


def _base_spec(server: GunicornServer, params: Params, n: int) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": server.port,
        "server_pids": server.worker_pids(),
        "agent_prefix": "bench-agent",
        "group": "bench",
        "register_connections": params.register_connections,
        "register_timeout_s": 60 + n * 0.004,
        "open_concurrency": params.open_concurrency,
        "open_timeout_s": 60 + n * 0.006,
        "settle_s": params.settle_seconds,
        "overall_timeout_s": 120 + n * 0.02,
    }


class Run:
    """Starts the servers for one run and remembers where their logs went."""

    def __init__(self, params: Params, log_dir: Path) -> None:
        self.params = params
        self.log_dir = log_dir

    def auth_env(self) -> tuple[dict[str, str], str]:
        """Settings for a server with auth on, and an enrollment token it accepts.

        A fresh secret and signing key file (in the run's temporary directory) per call; the
        token admits agents into the benchmark's group for an hour.
        """
        secret = secrets.token_urlsafe(48)
        key_file = self.log_dir / "signing-key.pem"
        key_file.write_bytes(generate_pem())
        key_file.chmod(0o600)
        token, _ = TokenIssuer(secret, system_clock).enrollment([AUTH_GROUP], ttl=3600)
        env = {
            "AGENT_REGISTRY_AUTH": "on",
            "AGENT_REGISTRY_TOKEN_SECRET": secret,
            "AGENT_REGISTRY_SIGNING_KEY_FILE": str(key_file),
        }
        return env, token

    def server(
        self,
        kind: str,
        workers: int = 1,
        env: dict[str, str] | None = None,
        label: str | None = None,
    ) -> GunicornServer:
        extra = {"AGENT_REGISTRY_LOG_LEVEL": self.params.server_log_level, **(env or {})}
        server = GunicornServer(kind, self.log_dir, workers, extra, label).start()
        self.started(server)
        return server

    def started(self, server: GunicornServer) -> None:
        """A hook for a run that places its servers (``bench.scaling`` pins them)."""

    def measure(
        self,
        kind: str,
        spec_for: Any,
        workers: int = 1,
        env: dict[str, str] | None = None,
        extra_pids: dict[str, int] | None = None,
        label: str | None = None,
    ) -> dict[str, Any]:
        try:
            server = self.server(kind, workers, env, label)
        except ServerUnavailable as exc:
            return {"error": "server unavailable", "unavailable": True, "detail": str(exc)}
        result: dict[str, Any] = {}
        pids = server.worker_pids()
        try:
            spec = spec_for(server)
            spec["server_pids"] = pids
            if extra_pids:
                spec["extra_pids"] = extra_pids
            result = run_loadgen(spec)
            result["spec"] = {k: v for k, v in spec.items() if k != "server_pids"}
        finally:
            code = server.stop()
            if code not in (0, None):
                log.warning(f"{server.name} exited with code {code}")
            result["server"] = {
                "kind": kind,
                "workers": workers,
                "port": server.port,
                "worker_pids": pids,
                "exit_code": code,
            }
            result["server_log"] = server.log_summary()
        return result

    # ---------------------------------------------------------------- a. idle streams

    def idle_streams(self) -> dict[str, Any]:
        p = self.params
        sizes: list[int | str] = [*p.streams, *(["max"] if p.max_streams else [])]
        out: dict[str, Any] = {}
        for size in sizes:
            out[str(size)] = {}
            for app in APPS:
                log.info(f"a. idle streams N={size} on {app}")

                hold = p.hold_seconds if size in ("max", max(p.streams)) else 0

                def spec(
                    server: GunicornServer, size: int | str = size, hold: float = hold
                ) -> dict[str, Any]:
                    n = 20_000 if size == "max" else int(size)
                    return {
                        **_base_spec(server, p, n),
                        "kind": "idle",
                        "n": n,
                        "max": size == "max",
                        "hold_s": hold,
                    }

                out[str(size)][app] = result = self.measure(app, spec)
                log.info(f"   {app}: {_short_idle(result)}")
        return out

    # ---------------------------------------------------------------- b. fan-out

    def fanout_spec(self, server: GunicornServer, n: int, app: str) -> dict[str, Any]:
        p = self.params
        tracked = app == "real"
        return {
            **_base_spec(server, p, n),
            "kind": "fanout",
            "n": n,
            "broadcasts": p.broadcasts,
            # Both are acked, so the ratio compares the same work; only the real server
            # tracks deliveries, so only its tracking is read back.
            "ack": p.ack_mode != "none",
            "ack_mode": p.ack_mode,
            "verify": tracked,
            "ack_connections": p.ack_connections,
            "payload": p.payload,
            "delivery_timeout_s": 30 + n * 0.002,
            # Commands expire 60 s after creation: acks later than that can only be 409.
            "ack_timeout_s": min(70.0, 30 + n * p.broadcasts * 0.003),
            "overall_timeout_s": 180 + n * 0.05,
        }

    def fanout(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for n in self.params.streams:
            out[str(n)] = {}
            for app in APPS:
                log.info(f"b. fan-out {self.params.broadcasts} broadcasts to N={n} on {app}")
                out[str(n)][app] = result = self.measure(
                    app, lambda server, n=n, app=app: self.fanout_spec(server, n, app)
                )
                log.info(f"   {app}: {_short_fanout(result)}")
            log.info(f"b. fan-out to N={n} on real with metrics off")
            out[str(n)][METRICS_OFF] = result = self.measure(
                "real",
                lambda server, n=n: self.fanout_spec(server, n, "real"),
                env=METRICS_OFF_ENV,
                label=f"real-metrics-off-{n}",
            )
            log.info(f"   metrics off: {_short_fanout(result)}")
        return out

    # ---------------------------------------------------------------- c. heartbeats

    def heartbeat_spec(self, server: GunicornServer) -> dict[str, Any]:
        p = self.params
        return {
            **_base_spec(server, p, p.heartbeat_agents),
            "kind": "heartbeat",
            "agents": p.heartbeat_agents,
            "connections": p.heartbeat_connections,
            "duration_s": p.heartbeat_seconds,
            "warmup_s": p.heartbeat_warmup_seconds,
        }

    def heartbeats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for app in APPS:
            log.info(
                f"c. heartbeats: {self.params.heartbeat_connections} clients, "
                f"{self.params.heartbeat_seconds} s on {app}"
            )
            out[app] = result = self.measure(app, self.heartbeat_spec)
            log.info(f"   {app}: {_short_heartbeat(result)}")
        # Right after auth off ("real"), so that both meet the same background load.
        log.info("c. heartbeats on real with auth on (each agent sends its own token)")
        env, enrollment = self.auth_env()

        def auth_spec(server: GunicornServer) -> dict[str, Any]:
            return {**self.heartbeat_spec(server), "enrollment_token": enrollment}

        out[AUTH_ON] = result = self.measure("real", auth_spec, env=env, label="real-auth-on")
        result.get("spec", {}).pop("enrollment_token", None)  # a credential: not in latest.json
        log.info(f"   auth on: {_short_heartbeat(result)}")
        log.info("c. heartbeats on real with metrics off")
        out[METRICS_OFF] = result = self.measure(
            "real", self.heartbeat_spec, env=METRICS_OFF_ENV, label="real-metrics-off"
        )
        log.info(f"   metrics off: {_short_heartbeat(result)}")
        return out

    # ---------------------------------------------------------------- d. sweeps

    def sweeps(self) -> dict[str, Any]:
        p = self.params
        spec = {
            "agents": p.sweep_agents,
            "deliveries": p.sweep_deliveries,
            "quiet_repeats": p.sweep_quiet_repeats,
            "due_steps": p.sweep_due_steps,
            "log_level": p.server_log_level,
        }
        log.info(f"d. sweeps in-process: {p.sweep_agents} agents, {p.sweep_deliveries} deliveries")
        try:
            done = subprocess.run(
                [sys.executable, "-m", "bench.sweeps"],
                input=json.dumps(spec),
                capture_output=True,
                text=True,
                cwd=ROOT,
                timeout=300,
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
        except (subprocess.TimeoutExpired, IndexError, ValueError) as exc:
            result = {"error": f"sweep benchmark failed: {exc!r}"}
        result["spec"] = spec
        if "error" not in result:
            log.info(
                f"   nothing due {result['nothing_due']['both_ms']['median']} ms, "
                f"1 % due {result['one_percent_due']['both_ms']['median']} ms"
            )
        return result

    # ---------------------------------------------------------------- e. Redis, 2 workers

    def redis(self) -> dict[str, Any]:
        p = self.params
        redis = RedisServer(self.log_dir)
        out: dict[str, Any] = {
            "redis_server": str(redis.binary),
            "version": redis.version(),
            "workers": p.redis_workers,
        }
        try:
            redis.start()
        except ServerUnavailable as exc:
            out["available"] = False
            out["reason"] = str(exc)
            return out
        try:
            env = {"AGENT_REGISTRY_STORE": redis.url}
            extra = {"redis": redis.pid}
            label = f"real-redis-{p.redis_workers}w"

            def counting_calls(spec: dict[str, Any]) -> dict[str, Any]:
                """The load generator also counts the calls redis-server answers."""
                return {**spec, "store_port": redis.port}

            out["fanout"] = {}
            for n in p.redis_streams:
                log.info(f"e. fan-out N={n}, Redis store, {p.redis_workers} workers")
                _flush_redis(redis.port)
                result = self.measure(
                    "real",
                    lambda server, n=n: counting_calls(self.fanout_spec(server, n, "real")),
                    p.redis_workers,
                    env,
                    extra,
                    label,
                )
                if result.get("unavailable"):
                    out["available"] = False
                    out["reason"] = (
                        "the server refused to start with AGENT_REGISTRY_STORE=redis://...: "
                        + _reason(result["detail"])
                    )
                    out.pop("fanout")
                    log.info(f"   not available: {out['reason']}")
                    return out
                out["available"] = True
                out["fanout"][str(n)] = result
                log.info(f"   redis: {_short_fanout(result)}")
            log.info(f"e. heartbeats, Redis, {p.redis_workers} workers")
            _flush_redis(redis.port)
            out["heartbeat"] = result = self.measure(
                "real",
                lambda server: counting_calls(self.heartbeat_spec(server)),
                p.redis_workers,
                env,
                extra,
                label,
            )
            if result.get("unavailable"):
                out["available"] = False
                out["reason"] = _reason(result["detail"])
                out.pop("heartbeat")
            else:
                out["available"] = True
            log.info(f"   redis: {_short_heartbeat(result)}")
            return out
        finally:
            redis.stop()

    # ---------------------------------------------------------------- f. side by side

    def paired(self) -> dict[str, Any]:
        """Memory with one worker and Redis with the e workers, both up at once, so that
        blocks of the same work alternate between them (``load_scenarios/paired.py``)."""
        p = self.params
        redis = RedisServer(self.log_dir)
        out: dict[str, Any] = {"workers": p.redis_workers}
        try:
            redis.start()
        except ServerUnavailable as exc:
            return {**out, "available": False, "reason": str(exc)}
        servers: list[GunicornServer] = []
        try:
            memory = self.server("real", label="pair-memory")
            servers.append(memory)
            env = {"AGENT_REGISTRY_STORE": redis.url}
            on_redis = self.server("real", p.redis_workers, env, f"pair-redis-{p.redis_workers}w")
            servers.append(on_redis)
            n = p.pair_streams
            fanout = self.fanout_spec(memory, n, "real")
            spec = {
                **_base_spec(memory, p, n),
                **{key: fanout[key] for key in _PAIRED_FROM_FANOUT},
                "kind": "paired",
                "n": n,
                # Each side is metered apart; these are the load generator's run as a whole.
                "server_pids": memory.worker_pids() + on_redis.worker_pids(),
                "extra_pids": {"redis": redis.pid},
                "sides": [
                    _side("memory", memory, "pair-memory"),
                    {
                        **_side("redis", on_redis, "pair-redis"),
                        "extra_pids": {"redis": redis.pid},
                        "store_port": redis.port,
                    },
                ],
                "rounds": p.pair_rounds,
                "broadcasts_per_block": p.pair_broadcasts_per_block,
                "heartbeat_rounds": p.pair_heartbeat_rounds,
                "heartbeat_block_s": p.pair_heartbeat_block_seconds,
                "heartbeat_agents": min(p.heartbeat_agents, n),
                "heartbeat_connections": p.heartbeat_connections,
                "overall_timeout_s": 300 + n * 0.05,
            }
            log.info(
                f"f. memory 1 worker and Redis {p.redis_workers} workers side by side, N={n}: "
                f"{p.pair_rounds} rounds of {p.pair_broadcasts_per_block} broadcasts, "
                f"{p.pair_heartbeat_rounds} of {p.pair_heartbeat_block_seconds} s of heartbeats"
            )
            out.update(run_loadgen(spec))
            out["available"] = "error" not in out
            log.info(f"   {_short_paired(out)}")
            return out
        except ServerUnavailable as exc:
            return {**out, "available": False, "reason": _reason(str(exc))}
        finally:
            for server in servers:
                server.stop()
            redis.stop()


# What f takes of b's spec: the broadcast, the ack pool and the time bounds.
_PAIRED_FROM_FANOUT = ("payload", "ack_connections", "delivery_timeout_s", "ack_timeout_s")


def _side(name: str, server: GunicornServer, prefix: str) -> dict[str, Any]:
    return {
        "name": name,
        "port": server.port,
        "server_pids": server.worker_pids(),
        "agent_prefix": prefix,
    }


def _flush_redis(port: int) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            sock.recv(64)
    except OSError:
        pass


def _reason(detail: str) -> str:
    """The most telling line of a failed start (the exception, if there is one)."""
    lines = [line.strip() for line in detail.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line or "refusing" in line:
            return line[:300]
    return lines[-1][:300] if lines else "unknown"


def _short_idle(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"ERROR {r['error']}"
    held = f", {r['held']} still open after {r['hold']['seconds']} s" if "hold" in r else ""
    return (
        f"opened {r['open']['opened']}/{r['n']} in {r['open']['time_to_open_s']} s, "
        f"{r.get('rss_bytes_per_stream', 0) / 1000:.1f} KB/stream{held}"
    )


def _short_fanout(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"ERROR {r['error']}"
    lat = r["latency_ms"]
    acks = r.get("acks", {})
    return (
        f"{r['events_per_s']} events/s, p50 {lat['p50']} ms, p99 {lat['p99']} ms, "
        f"exactly once {r['exactly_once']}, acks ok {acks.get('ok', '-')}"
    )


def _short_paired(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"ERROR {r['error']}"
    parts = []
    for name in ("fanout", "heartbeat"):
        figures = r.get(name) or {}
        memory, redis = figures.get("memory", {}), figures.get("redis", {})
        parts.append(
            f"{name}: Redis {redis.get('cpu_us_per_operation')} µs ÷ memory "
            f"{memory.get('cpu_us_per_operation')} µs = {figures.get('ratio')} "
            f"(rounds' median {figures.get('median_round_ratio')}, valid {figures.get('valid')})"
        )
    return "; ".join(parts)


def _short_heartbeat(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"ERROR {r['error']}"
    lat = r["latency_ms"]
    first = r.get("first_use") or {}
    return (
        f"{r['rps']} req/s, p50 {lat['p50']} ms, p99 {lat['p99']} ms, errors {r['errors']}, "
        f"server CPU {r['server_cpu_us_per_request']} µs/request "
        f"(first use {first.get('server_cpu_us_per_request', '-')} µs)"
    )

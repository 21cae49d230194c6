"""The tables of latest.md: summary (real vs floor), where the CPU went, server logs."""

from __future__ import annotations

from typing import Any

from .figures import (
    AUTH_ON,
    METRICS_OFF,
    PAIRED_OPERATIONS,
    error_of,
    fmt,
    fmt_ratio,
    get,
    kb,
    limit_of,
    per_core,
    ratio,
)


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
                kb(get(real, "rss_bytes_per_stream")),
                kb(get(floor, "rss_bytes_per_stream")),
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
        rows.extend(_error_rows(f"a. idle {label}", real, floor))
    b = sc.get("b") or {}
    for size, pair in b.items():
        rows.extend(
            _fanout_rows(f"b. fan-out N={int(size):,}", pair.get("real"), pair.get("floor"))
        )
    c = sc.get("c") or {}
    if c:
        rows.extend(_heartbeat_rows("c. heartbeats", c.get("real"), c.get("floor")))
    d = sc.get("d") or {}
    if d and not error_of(d):
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
        rows.append(["d. sweeps", "error", error_of(d) or "", "", "", ""])
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


def _fanout_rows(label: str, real: Any, floor: Any, workers: int = 1) -> list[list[str]]:
    rows = _throughput_rows(
        label,
        real,
        floor,
        (
            ("events/s", ("events_per_s",)),
            ("events/s per core of server CPU (acks included)", PER_CORE),
            ("latency p50 (ms)", ("latency_ms", "p50")),
            ("latency p99 (ms)", ("latency_ms", "p99")),
            ("latency max (ms)", ("latency_ms", "max")),
            ("server CPU per event (µs)", ("server_cpu_us_per_event",)),
            ("server + store CPU per event (µs)", ("server_and_store_cpu_us_per_event",)),
        ),
        cost_key="server_cpu_us_per_event",
        limit=limit_of(get(real, "delivery_cpu"), workers),
    )
    rows.extend(
        _store_call_rows(
            label, real, "store_calls_per_event", "per event and its ack", "ack_connections"
        )
    )
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
    if real and not error_of(real):
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
    rows.extend(_error_rows(label, real, floor))
    return rows


def _heartbeat_rows(label: str, real: Any, floor: Any, workers: int = 1) -> list[list[str]]:
    rows = _throughput_rows(
        label,
        real,
        floor,
        (
            ("requests/s", ("rps",)),
            ("requests/s per core of server CPU", PER_CORE),
            ("latency p50 (ms)", ("latency_ms", "p50")),
            ("latency p99 (ms)", ("latency_ms", "p99")),
            ("errors", ("errors",)),
            ("server CPU per request (µs)", ("server_cpu_us_per_request",)),
            ("server + store CPU per request (µs)", ("server_and_store_cpu_us_per_request",)),
        ),
        cost_key="server_cpu_us_per_request",
        limit=limit_of(get(real, "cpu"), workers),
    )
    rows.extend(
        _store_call_rows(label, real, "store_calls_per_request", "per request", "connections")
    )
    rows.extend(_error_rows(label, real, floor))
    return rows


# Stands for "throughput per core of server CPU" in a figure list (it is computed, not read).
PER_CORE = ("_per_core",)


def _throughput_rows(
    label: str,
    real: Any,
    floor: Any,
    figures: tuple[tuple[str, tuple[str, ...]], ...],
    cost_key: str,
    limit: str,
) -> list[list[str]]:
    """One row per figure measured on either side; ``PER_CORE`` rows come from ``cost_key``."""
    rows = []
    for name, path in figures:
        if path == PER_CORE:
            rv, fv = per_core(real, cost_key), per_core(floor, cost_key)
            row_limit = "server CPU alone (robust to background load)"
        else:
            rv, fv = get(real, *path), get(floor, *path)
            row_limit = limit
        if rv is None and fv is None:
            continue
        rows.append([label, name, fmt(rv), fmt(fv), fmt_ratio(ratio(rv, fv)), row_limit])
    return rows


def _error_rows(label: str, real: Any, floor: Any) -> list[list[str]]:
    return [
        [label, f"{app}: error", error_of(result) or "", "", "", ""]
        for app, result in (("real", real), ("floor", floor))
        if error_of(result)
    ]


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
        for app in ("real", "floor", METRICS_OFF):
            add(f"b. N={size} {_app_label(app)}", get(pair, app))
    for app in ("real", "floor", AUTH_ON, METRICS_OFF):
        add(f"c. {_app_label(app)}", get(sc, "c", app))
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
        for app in ("real", "floor", METRICS_OFF):
            label = _app_label(app)
            add(f"b. fan-out N={size} {label} (deliveries)", get(pair, app, "delivery_cpu"))
            if app != "floor":
                add(f"b. fan-out N={size} {label} (until all acked)", get(pair, app, "total_cpu"))
    for app in ("real", "floor", AUTH_ON, METRICS_OFF):
        add(f"c. heartbeats {_app_label(app)}", get(sc, "c", app, "cpu"))
        add(f"c. heartbeats {_app_label(app)}, first use", get(sc, "c", app, "first_use", "cpu"))
    e = sc.get("e") or {}
    workers = e.get("workers", 2)
    for size, result in (e.get("fanout") or {}).items():
        add(f"e. fan-out N={size} redis (deliveries)", get(result, "delivery_cpu"), workers)
        add(f"e. fan-out N={size} redis (until all acked)", get(result, "total_cpu"), workers)
    add("e. heartbeats redis", get(e, "heartbeat", "cpu"), workers)
    return rows


def _app_label(app: str) -> str:
    return {METRICS_OFF: "real, metrics off", AUTH_ON: "real, auth on"}.get(app, app)


def metrics_cost_rows(doc: dict[str, Any]) -> list[list[str]]:
    """The real server with metrics on and off, measured in the same run (b and c)."""
    sc = doc["scenarios"]
    rows = []
    figures = (
        ("events/s", ("events_per_s",)),
        ("p99 POST → receipt (ms)", ("latency_ms", "p99")),
        ("server CPU per event (µs)", ("server_cpu_us_per_event",)),
    )
    for size, pair in (sc.get("b") or {}).items():
        if METRICS_OFF not in pair:
            continue
        for name, path in figures:
            on, off = get(pair, "real", *path), get(pair, METRICS_OFF, *path)
            rows.append([f"b. fan-out N={int(size):,}", name, fmt(on), fmt(off), _on_off(on, off)])
    c = sc.get("c") or {}
    if METRICS_OFF in c:
        for name, path in (
            ("requests/s", ("rps",)),
            ("p99 (ms)", ("latency_ms", "p99")),
            ("server CPU per request (µs)", ("server_cpu_us_per_request",)),
        ):
            on, off = get(c, "real", *path), get(c, METRICS_OFF, *path)
            rows.append(["c. heartbeats", name, fmt(on), fmt(off), _on_off(on, off)])
    return rows


def paired_rows(doc: dict[str, Any]) -> list[list[str]]:
    """f: each operation's CPU on both servers over their alternated blocks."""
    f = doc["scenarios"].get("f") or {}
    rows = []
    for key, name in PAIRED_OPERATIONS:
        figures = f.get(key)
        if not figures:
            continue
        ratios = figures.get("round_ratios") or []
        rows.append(
            [
                name,
                fmt(get(figures, "memory", "cpu_us_per_operation")),
                fmt(get(figures, "redis", "cpu_us_per_operation")),
                fmt_ratio(figures.get("ratio")),
                fmt_ratio(figures.get("median_round_ratio")),
                f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "-",
                fmt(figures.get("valid")),
            ]
        )
    return rows


def auth_cost_rows(doc: dict[str, Any]) -> list[list[str]]:
    """The real server with auth on and off, measured in the same run (c)."""
    c = get(doc, "scenarios", "c") or {}
    if AUTH_ON not in c:
        return []
    rows = []
    for phase, prefix in (("steady state", ()), ("first use of each token", ("first_use",))):
        for name, path in (
            ("heartbeats/s", ("rps",)),
            ("latency p50 (ms)", ("latency_ms", "p50")),
            ("latency p99 (ms)", ("latency_ms", "p99")),
            ("errors", ("errors",)),
            ("server CPU per heartbeat (µs)", ("server_cpu_us_per_request",)),
        ):
            on, off = get(c, AUTH_ON, *prefix, *path), get(c, "real", *prefix, *path)
            if on is None and off is None:
                continue
            rows.append([f"c. {phase}", name, fmt(on), fmt(off), _on_off(on, off)])
    error = error_of(c.get(AUTH_ON))
    if error:
        rows.append(["c. auth on", "error", error, "", ""])
    return rows


def _on_off(on: Any, off: Any) -> str:
    value = ratio(on, off)
    return "-" if value is None else f"{value:.3f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    def clean(cell: str) -> str:
        return str(cell).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _store_call_rows(
    label: str, real: Any, key: str, per: str, connections: str
) -> list[list[str]]:
    """Redis's scripts and transactions per operation: the fewer, the larger the batches
    (a batch's round trip is most of what it costs). A worker batches only its own
    requests, so how the load generator's connections spread over the workers is shown."""
    calls = get(real, key)
    if calls is None:
        return []
    spread = get(real, f"{connections}_per_worker") or []
    note = f"{connections.replace('_', ' ')} per worker: {' / '.join(map(str, spread))}"
    return [[label, f"Redis calls {per} (scripts + transactions)", fmt(calls, 3), "-", "-", note]]

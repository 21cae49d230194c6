"""Reading and formatting the figures of latest.json, shared by the tables and the targets."""

from __future__ import annotations

from typing import Any

KB = 1000  # the memory target is 25 KB = 25 000 bytes per open stream

# Keys of the real server's variants beside "real" and "floor" in a scenario's results: the
# real server with AGENT_REGISTRY_METRICS=off (b, c) and with AGENT_REGISTRY_AUTH=on (c).
METRICS_OFF = "real_metrics_off"
AUTH_ON = "real_auth_on"

# f's operations (load_scenarios/paired.py): each one's key in its results, and its name.
PAIRED_OPERATIONS = (("fanout", "fan-out event and its ack"), ("heartbeat", "heartbeat"))


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


def error_of(result: Any) -> str | None:
    if not isinstance(result, dict):
        return "not run"
    if "error" in result:
        return str(result["error"])
    return None


def per_core(result: Any, key: str) -> float | None:
    """Throughput one fully used core would give: 1 / (server CPU per operation)."""
    micros = get(result, key)
    return round(1e6 / micros, 1) if isinstance(micros, int | float) and micros else None


def kb(value: Any) -> float | None:
    return None if value is None else round(value / KB, 1)

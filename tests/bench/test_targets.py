"""The Redis cost targets: CPU per operation, workers plus redis-server, against memory."""

from __future__ import annotations

from bench.targets import targets


def _doc() -> dict:
    return {
        "scenarios": {
            "b": {"2000": {"real": {"server_and_store_cpu_us_per_event": 300.0}}},
            "c": {"real": {"server_and_store_cpu_us_per_request": 100.0}},
            "e": {
                "available": True,
                "workers": 2,
                "fanout": {
                    "2000": {"server_and_store_cpu_us_per_event": 360.0},
                    "4000": {"server_and_store_cpu_us_per_event": 390.0},
                },
                "heartbeat": {"server_and_store_cpu_us_per_request": 120.0},
            },
        }
    }


def _by_name(doc: dict) -> dict[str, dict]:
    return {t["target"]: t for t in targets(doc)}


def test_each_fan_out_size_both_measured_and_heartbeats_are_judged_against_memory():
    found = _by_name(_doc())

    fanout = found[
        "Redis 2 workers, fan-out N=2,000: CPU per event and its ack (workers + redis-server) "
        "÷ one-worker memory"
    ]
    heartbeat = found[
        "Redis 2 workers: CPU per heartbeat (workers + redis-server) ÷ one-worker memory"
    ]
    assert (fanout["measured"], fanout["goal"], fanout["status"]) == (1.2, "<= 1.15 x", "MISS")
    assert (heartbeat["measured"], heartbeat["goal"], heartbeat["status"]) == (
        1.2,
        "<= 1.3 x",
        "pass",
    )
    # b did not measure N = 4 000: there is nothing to compare that size with.
    assert not any("N=4,000" in name for name in found)


def test_an_unavailable_redis_leaves_the_cost_targets_not_measured_with_the_reason():
    doc = _doc()
    doc["scenarios"]["e"] = {"available": False, "reason": "no redis-server"}

    cost = [t for name, t in _by_name(doc).items() if "CPU per heartbeat" in name]

    assert [t["status"] for t in cost] == ["not measured"]
    assert "no redis-server" in cost[0]["margin"]


def test_the_cost_targets_come_from_f_when_it_ran_and_only_when_every_answer_was_right():
    figures = {"ratio": 1.1, "valid": True, "round_ratios": [1.0, 1.2], "median_round_ratio": 1.1}
    f = {"available": True, "workers": 2, "fanout": figures, "heartbeat": dict(figures)}
    # b, c and e measured the same operations a minute apart: not judged beside f.
    doc = _doc()
    doc["scenarios"]["f"] = f

    cost = [t for t in targets(doc) if "CPU per" in t["target"]]

    assert [(t["measured"], t["status"], t["where"]) for t in cost] == [
        (1.1, "pass", "f"),
        (1.1, "pass", "f"),
    ]

    f["fanout"] = {**figures, "valid": False}
    fanout = next(t for t in targets(doc) if "side by side: CPU per event" in t["target"])
    assert fanout["status"] == "not measured"

"""The big-machine profile: which profile a machine gets, and how the curve is written."""

from __future__ import annotations

from bench.scaling import point, profile_for, render


def test_a_small_machine_runs_the_reduced_profile_labelled_not_representative():
    profile = profile_for([0, 1])

    assert (profile.workers, profile.streams, profile.representative) == ([1, 2], 2000, False)
    assert profile.loadgen_cores == profile.server_cores == []


def test_a_big_machine_gives_the_load_generator_a_quarter_of_the_cores_of_its_own():
    profile = profile_for(list(range(16)))

    assert profile.workers == [1, 2, 4, 8]
    assert (profile.streams, profile.agents, profile.representative) == (100_000, 100_000, True)
    assert profile.loadgen_cores == [12, 13, 14, 15]
    assert profile.server_cores == list(range(12))


def test_the_curve_has_a_row_per_worker_count_and_names_a_failed_run():
    measured = {
        "workers": 2,
        "fanout": {
            "events_per_s": 15000.0,
            "server_and_store_cpu_us_per_event": 120.5,
            "exactly_once": True,
            "acks": {"all_ok": True},
        },
        "heartbeat": {"rps": 7000.0, "server_and_store_cpu_us_per_request": 140.2, "errors": 0},
    }
    failed = {"workers": 4, "fanout": {"error": "server unavailable"}, "heartbeat": {}}
    doc = {
        "generated_at": "2026-12-02T10:00:00+0000",
        "command": "python -m bench.scaling",
        "duration_s": 60.0,
        "machine": {"cores": 2},
        "profile": {**vars(profile_for([0, 1]))},
        "curve": [point(measured), point(failed)],
    }

    text = render(doc)

    assert "**Not representative**" in text
    assert "| 2 | 15,000.0 | 120.5 | True, True | 7,000.0 | 140.2 | 0 |" in text
    assert "| 4 | error: server unavailable |" in text

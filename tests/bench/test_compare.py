"""bench.compare: each run's Redis and memory figures side by side, and their medians."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.compare import load, main, render, run_rows, steady, summary


def run(memory_event: float, redis_event: float, memory_hb: float, redis_hb: float) -> Any:
    """A run's raw figures as make bench writes them, reduced to what is compared."""
    return {
        "scenarios": {
            "b": {"2000": {"real": {"server_and_store_cpu_us_per_event": memory_event}}},
            "c": {"real": {"server_and_store_cpu_us_per_request": memory_hb}},
            "e": {
                "fanout": {
                    "2000": {
                        "server_and_store_cpu_us_per_event": redis_event,
                        "store_calls_per_event": 0.066,
                        "ack_connections_per_worker": [24, 41],
                    }
                },
                "heartbeat": {"server_and_store_cpu_us_per_request": redis_hb},
            },
        }
    }


def test_the_medians_are_taken_per_operation_over_the_runs() -> None:
    runs = [run(300, 390, 180, 200), run(340, 400, 170, 230), run(280, 460, 190, 190)]
    rows = [row for index, doc in enumerate(runs) for row in run_rows(f"r{index}", doc)]

    assert [(row["run"], row["operation"][:7]) for row in rows[:2]] == [
        ("r0", "fan-out"),
        ("r0", "heartbe"),
    ]
    fanout, heartbeat = summary(rows)
    assert (fanout["runs"], fanout["memory"], fanout["redis"]) == (3, 300, 400)
    assert fanout["ratio"] == pytest.approx(400 / 300)
    assert fanout["ratios"] == pytest.approx([1.3, 400 / 340, 460 / 280])
    assert (heartbeat["memory"], heartbeat["redis"]) == (180, 200)


def test_a_run_without_the_memory_side_of_a_fan_out_size_compares_only_heartbeats() -> None:
    doc = run(300, 390, 180, 200)
    doc["scenarios"]["b"] = {"10000": doc["scenarios"]["b"]["2000"]}

    assert [row["operation"] for row in run_rows("r", doc)] == ["heartbeat"]


def test_runs_are_read_from_their_files_or_directories(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "latest.json").write_text(json.dumps(run(300, 390, 180, 200)))
    (tmp_path / "two.json").write_text(json.dumps(run(340, 400, 170, 230)))

    assert [name for name, _ in load([str(tmp_path / "one"), str(tmp_path / "two.json")])] == [
        str(tmp_path / "one"),
        str(tmp_path / "two.json"),
    ]
    main([str(tmp_path / "one"), str(tmp_path / "two.json")])
    out = capsys.readouterr().out
    assert "| fan-out event and its ack, N = 2,000 | 2 | 320.0 | 395.0 | 1.23 |" in out
    assert "| 24 / 41 |" in out


def test_a_run_is_steady_when_both_sides_met_about_the_same_speed() -> None:
    doc = run(200, 300, 100, 130)
    sc = doc["scenarios"]
    sc["b"]["2000"]["real"]["total_cpu"] = {"probe": {"mean_ms": 1.5, "samples": 40}}
    sc["e"]["fanout"]["2000"]["total_cpu"] = {"probe": {"mean_ms": 1.7, "samples": 50}}
    sc["c"]["real"]["cpu"] = {"probe": {"mean_ms": 1.5, "samples": 80}}
    sc["e"]["heartbeat"]["cpu"] = {"probe": {"mean_ms": 2.9, "samples": 80}}
    fanout, heartbeat = run_rows("r", doc)
    older = run_rows("old", run(200, 300, 100, 130))

    assert (steady(fanout), steady(heartbeat), steady(older[0])) == (True, False, None)
    fanouts, heartbeats = summary([fanout, heartbeat, *older])
    assert (fanouts["steady_runs"], fanouts["steady_ratio"]) == (1, pytest.approx(1.5))
    assert (heartbeats["steady_runs"], heartbeats["steady_ratio"]) == (0, None)


def test_runs_with_nothing_to_compare_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "latest.json").write_text(json.dumps({"scenarios": {}}))
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path)])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("text", ["[bench 13:14] wrote latest.md", "[1, 2]"])
def test_a_file_that_is_not_a_result_is_named_in_a_usage_error(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "run.log").write_text(text)
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "run.log")])
    assert exit_info.value.code == 2
    assert "run.log: not a make bench result" in capsys.readouterr().err


def test_f_is_compared_as_its_own_operation_and_only_when_every_answer_was_right() -> None:
    doc = run(300, 390, 180, 200)
    side = {
        "memory": {"cpu_us_per_operation": 150.0},
        "redis": {"cpu_us_per_operation": 165.0, "store_calls_per_operation": 0.04},
    }
    doc["scenarios"]["f"] = {
        "fanout": {**side, "valid": True},
        "heartbeat": {**side, "valid": False},
        "redis_ack_connections_per_worker": [30, 34],
    }

    rows = run_rows("r", doc)

    paired = [row for row in rows if "side by side" in row["operation"]]
    assert [(row["operation"], row["ratio"]) for row in paired] == [
        ("fan-out event and its ack, side by side (f)", pytest.approx(1.1))
    ]
    assert steady(paired[0]) is None
    assert (paired[0]["calls"], paired[0]["spread"]) == (0.04, [30, 34])


def test_f_rows_carry_each_sides_median_speed_probe_over_its_blocks() -> None:
    doc = run(300, 390, 180, 200)
    blocks = [{"probe_ms": 2.0}, {"probe_ms": 2.6}, {"probe_ms": None}, {"probe_ms": 2.2}]
    doc["scenarios"]["f"] = {
        "fanout": {
            "memory": {"cpu_us_per_operation": 200.0, "blocks": blocks},
            "redis": {"cpu_us_per_operation": 240.0, "blocks": [{"probe_ms": 2.3}]},
            "valid": True,
        }
    }

    (paired,) = [row for row in run_rows("r", doc) if "side by side" in row["operation"]]

    assert (paired["memory_probe"], paired["redis_probe"]) == (2.2, 2.3)
    assert steady(paired) is True


def test_each_row_says_what_redis_server_spent_when_the_workers_were_counted_apart() -> None:
    doc = run(300, 390, 180, 200)
    doc["scenarios"]["e"]["fanout"]["2000"]["server_cpu_us_per_event"] = 350.0
    doc["scenarios"]["f"] = {
        "fanout": {
            "memory": {"cpu_us_per_operation": 250.0},
            "redis": {"cpu_us_per_operation": 277.5, "workers_cpu_us_per_operation": 254.0},
            "valid": True,
        }
    }

    rows = run_rows("r", doc)

    assert [row["store"] for row in rows] == [pytest.approx(40.0), None, pytest.approx(23.5)]
    out = render(rows, summary(rows))
    assert "| 300.0 | 390.0 | 40.0 | 1.30 |" in out
    assert "| 180.0 | 200.0 | - | 1.11 |" in out

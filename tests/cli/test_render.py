"""Text output: the progress line on a terminal and in a log, tables."""

from __future__ import annotations

import io
import re

from agent_registry.cli.main import EXIT_EXPIRED, EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, outcome
from agent_registry.cli.render import ProgressLine, table


def command(pending=0, delivered=0, acknowledged=0, failed=0, expired=0):
    targets = pending + delivered + acknowledged + failed + expired
    return {
        "summary": {
            "targets": targets,
            "pending": pending,
            "delivered": delivered,
            "acknowledged": acknowledged,
            "failed": failed,
            "expired": expired,
        }
    }


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_progress_line_is_rewritten_in_place():
    stream = Terminal()
    progress = ProgressLine(stream)
    progress(command(pending=2), 0.0)
    progress(command(acknowledged=2), 0.3)
    progress.finish()

    text = stream.getvalue()
    assert text.count("\r") == 2
    assert text.endswith("2 acknowledged, 0 failed, 0 expired\n")
    assert "\n" not in text[:-1]


def test_elsewhere_a_line_is_written_only_when_the_counts_change():
    stream = io.StringIO()
    progress = ProgressLine(stream, every=0)
    progress(command(pending=2), 0.0)
    progress(command(pending=2), 0.1)
    progress(command(delivered=2), 0.2)
    progress.finish()

    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert "\r" not in stream.getvalue()


def test_table_columns_are_as_wide_as_their_widest_cell():
    assert table(["ID", "OK"], [["a-long-id", True], ["b", None]]) == (
        "ID         OK\na-long-id  yes\nb          -"
    )


def test_outcome_precedence_failed_then_expired_then_timeout():
    assert outcome(command(acknowledged=3), True, None)[0] == EXIT_OK
    assert outcome(command(failed=1, expired=1, pending=1), False, 5)[0] == EXIT_FAILED
    assert outcome(command(expired=1, pending=1), False, 5)[0] == EXIT_EXPIRED
    code, sentence = outcome(command(acknowledged=1, delivered=1), False, 5)
    assert code == EXIT_TIMEOUT
    assert sentence == "1 of 2 target(s) were not final when the 5 s timeout passed."


def test_docs_list_the_same_exit_codes_as_send_help():
    from agent_registry.cli.main import EXIT_CODES
    from harness.process import ROOT

    documented = re.findall(r"^\| (\d+) \|", (ROOT / "docs" / "cli.md").read_text(), re.M)
    in_help = re.findall(r"^  (\d+) ", EXIT_CODES, re.M)
    assert documented == in_help == ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "130"]

"""The report names the code it measured, or says it cannot."""

from bench.report import commit_text


def test_a_checkout_names_its_commit() -> None:
    git = {"commit": "71af26822ba9c0ffee", "uncommitted_changes": []}
    assert commit_text(git) == "Commit `71af26822ba9`"


def test_uncommitted_files_are_counted() -> None:
    git = {"commit": "71af26822ba9c0ffee", "uncommitted_changes": ["a.py", "b.py"]}
    assert commit_text(git) == "Commit `71af26822ba9` with 2 uncommitted file(s)"


def test_a_run_outside_a_checkout_says_so() -> None:
    git = {"commit": "", "uncommitted_changes": []}
    assert commit_text(git) == "Commit unknown (not run from a git checkout)"

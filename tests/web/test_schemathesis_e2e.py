"""Schemathesis against a live gunicorn server, from the document the server publishes:
no answer may be a 5xx, and every answer must conform to the document (status, content
type, body schema). A bounded number of examples per operation keeps it to seconds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 25
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)


def test_every_answer_to_generated_requests_conforms_and_none_is_a_5xx(
    start_server, tmp_path: Path
) -> None:
    server = start_server()
    schemathesis = Path(sys.executable).with_name("schemathesis")

    run = subprocess.run(
        [
            str(schemathesis),
            "run",
            f"{server.url}/api/v1/openapi.json",
            "--checks",
            ",".join(CHECKS),
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            "1",
            "--workers",
            "1",
            "--request-timeout",
            "5",
            # An open event stream never ends; streams have end-to-end tests of their own.
            "--exclude-path-regex",
            "/events$",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # schemathesis keeps a cache in its working directory
    )

    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]

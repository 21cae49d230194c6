"""A plain install starts: ``pip install .`` without the dev extras, then ``agent-registry
serve``, and serves the dashboard's files (package data).

Regression: gunicorn's gevent worker imports ``packaging``, which only gunicorn's
``gevent`` extra declares, so an install that depended on bare ``gunicorn`` could not
start a worker; the dev extras hid it.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from harness.gunicorn import GunicornServer
from harness.process import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NOT_THE_PACKAGE = shutil.ignore_patterns(
    ".*", "build", "dist", "*.egg-info", "__pycache__", "results", "tests", "bench", "harness"
)


def install_plainly(tmp_path: Path) -> Path:
    """A fresh venv (no system site-packages) with a non-editable install of a copy of the
    repository (so that no build/ lands in the tree); returns its bin directory."""
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=NOT_THE_PACKAGE)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--quiet", str(source)], check=True, timeout=600)
    return venv / "bin"


def test_a_plain_install_serves_and_stops_on_sigterm(tmp_path):
    bin_dir = install_plainly(tmp_path)
    # Run outside the repository, so that nothing is imported from the source tree.
    server = GunicornServer(
        log_dir=tmp_path, command=[str(bin_dir / "agent-registry"), "serve"], cwd=tmp_path
    )
    with server:
        answer = httpx.post(
            f"{server.url}/api/v1/agents/register", json={"id": "plain-1", "group": "plain"}
        )
        assert answer.status_code == 201, server.log()
        # The dashboard's files are package data: the installed package serves them.
        for path in ("/ui/", "/ui/app.js", "/ui/style.css"):
            assert httpx.get(f"{server.url}{path}").status_code == 200, path
        assert server.stop(signal.SIGTERM, timeout=15) == 0, server.log()

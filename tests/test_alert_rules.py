"""docs/monitoring/alerts.yml is valid and its unit tests (alerts_test.yml) pass, checked
with Prometheus's own promtool when it is installed (Debian: ``apt-get install prometheus``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

MONITORING = Path(__file__).resolve().parent.parent / "docs" / "monitoring"
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not found: apt-get install prometheus to check alerts.yml"
)


@pytest.mark.parametrize(
    "check", [("check", "rules", "alerts.yml"), ("test", "rules", "alerts_test.yml")]
)
def test_promtool_accepts_the_alert_rules(check: tuple[str, ...]):
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, *check], cwd=MONITORING, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr

"""The pictures in the docs: the dashboard with a few agents (two gone STALE) and a group
command at 100 %. Always taken; written to docs/ only with ``UPDATE_SCREENSHOT=1``, so a
normal run leaves the tree as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.process import ROOT
from tests.ui.conftest import NO_PLAYWRIGHT, QUICK, UPDATE_SCREENSHOT, send_to_group

expect = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT).expect

pytestmark = pytest.mark.e2e

PNG = b"\x89PNG\r\n\x1a\n"
DOCS = ROOT / "docs"


def test_screenshots_of_the_agents_and_the_command_views(
    start_server: Any, open_page: Any, start_agents: Any, tmp_path: Path
) -> None:
    server = start_server(QUICK)
    page, console = open_page(server)
    expect(page.locator("#stream-status")).to_have_text("Live")
    for n in range(1, 5):  # one at a time, so that the chart shows steps
        start_agents(server, [f"orders-svc-{n}"], "orders")
        expect(page.locator("#count-connected")).to_have_text(str(n))
    billing = start_agents(server, [f"billing-{n}" for n in range(1, 4)], "billing")
    expect(page.locator("#count-connected")).to_have_text("7")

    send_to_group(page, "orders", '{"seconds": 30, "routeIds": ["route-a"]}')
    expect(page.locator("#command-progress [role=progressbar]")).to_have_attribute(
        "aria-valuenow", "100"
    )
    for agent in billing[1:]:
        agent.stop()
    page.get_by_role("link", name="Agents", exact=True).click()
    expect(page.locator("#count-STALE")).to_have_text("2")
    expect(page.locator("#agent-rows .badge.state-STALE")).to_have_count(2)

    shots = {"dashboard.png": page.screenshot()}
    page.get_by_role("link", name="Commands", exact=True).click()
    page.locator("#command-rows a").first.click()
    expect(page.locator("#delivery-rows tr")).to_have_count(4)
    shots["dashboard-command.png"] = page.screenshot()

    for name, picture in shots.items():
        assert picture.startswith(PNG)
        (tmp_path / name).write_bytes(picture)
        if UPDATE_SCREENSHOT:
            (DOCS / name).write_bytes(picture)
    assert console.errors == []

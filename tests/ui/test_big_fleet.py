"""The agent table over 100 000 agents: pages, filters and the id search are keyset reads of
one page each (``limit`` and ``after``); the page never asks for the whole fleet."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from harness.big_fleet import SEED_ENV, agent_id
from harness.gunicorn import GunicornServer
from tests.ui.conftest import NO_PLAYWRIGHT

expect = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT).expect

pytestmark = pytest.mark.e2e

FLEET = 100_000
SEEDED_APP = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "harness.seeded_app:app"]


@pytest.fixture
def server(tmp_path: Path) -> Any:
    with GunicornServer("real", tmp_path, 1, {SEED_ENV: str(FLEET)}, "ui-big", SEEDED_APP) as s:
        yield s


def agent_lists(urls: list[str]) -> list[dict[str, list[str]]]:
    return [parse_qs(urlparse(url).query) for url in urls if urlparse(url).path == "/api/v1/agents"]


def test_paging_filtering_and_searching_100_000_agents_read_one_page_each(
    server: Any, open_page: Any
) -> None:
    page, console = open_page(server)
    rows = page.locator("#agent-rows tr")
    expect(rows).to_have_count(50)
    expect(page.locator("#count-total")).to_have_text(f"{FLEET:,}")
    expect(rows.first).to_contain_text(agent_id(0))

    page.get_by_role("button", name="Next page").click()
    expect(rows.first).to_contain_text(agent_id(50))
    page.get_by_role("button", name="Previous page").click()
    expect(rows.first).to_contain_text(agent_id(0))

    page.get_by_label("Id starts with").fill("agent-0999")
    expect(rows.first).to_contain_text(agent_id(99_900))
    expect(rows).to_have_count(50)
    page.get_by_role("button", name="Next page").click()
    expect(rows.last).to_contain_text(agent_id(99_999))
    expect(page.locator("#agent-page-status")).to_contain_text("(last page)")
    expect(page.get_by_role("button", name="Next page")).to_be_disabled()

    filters = page.locator("#agent-filters")
    filters.get_by_label("Id starts with").fill("")
    filters.get_by_label("Group").fill("g3")
    expect(rows.nth(1)).to_contain_text(agent_id(13))

    # The stream was opened, then again for group=g3 (before that page was read), and for
    # nothing else: searching and paging do not reopen it.
    streams = [url for url in console.urls if "/api/v1/events" in url]
    assert [url.rpartition("/")[2] for url in streams] == ["events", "events?group=g3"]
    lists = agent_lists(console.urls)
    assert lists and all(int(query["limit"][0]) <= 101 for query in lists), lists
    assert console.errors == []

"""The dashboard in a real browser against a real server: it loads cleanly, its counts and
table follow simulated agents live, a command sent from its form reaches 100 %, and it is
usable by keyboard and at phone width."""

from __future__ import annotations

from typing import Any

import pytest

from harness.wait import wait_until
from tests.ui.conftest import NO_PLAYWRIGHT, PHONE, QUICK, send_to_group

expect = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT).expect

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(start_server: Any) -> Any:
    return start_server(QUICK)


def count(page: Any, name: str) -> Any:
    return page.locator(f"#count-{name}")


def test_the_page_loads_live_with_no_console_error(server: Any, open_page: Any) -> None:
    page, console = open_page(server)

    assert page.url == f"{server.url}/ui/"
    expect(page.locator("#stream-status")).to_have_text("Live")
    expect(count(page, "LIVE")).to_have_text("0")
    expect(page.locator("#agent-page-status")).to_have_text("No agent matches.")
    expect(page.locator("#notice")).to_be_hidden()
    assert console.errors == []


def test_counts_and_rows_follow_agents_as_they_connect_and_go_stale(
    server: Any, open_page: Any, start_agents: Any
) -> None:
    page, console = open_page(server)
    expect(page.locator("#stream-status")).to_have_text("Live")

    agents = start_agents(server, ["web-1", "web-2", "web-3"], "web")

    expect(count(page, "LIVE")).to_have_text("3")
    expect(count(page, "connected")).to_have_text("3")
    rows = page.locator("#agent-rows tr")
    expect(rows).to_have_count(3)  # new agents on the page shown: it is read again
    expect(rows.first.locator('[data-field="connected"]')).to_have_text("yes")

    for agent in agents:
        agent.stop()  # no more heartbeats, streams closed

    expect(count(page, "connected")).to_have_text("0")
    expect(count(page, "STALE")).to_have_text("3")
    expect(count(page, "LIVE")).to_have_text("0")
    expect(page.locator("#agent-rows .badge.state-STALE")).to_have_count(3)  # rows in place
    assert page.locator("#fleet-chart polyline.line-STALE").count() == 1
    assert console.errors == []


def test_a_group_command_from_the_form_reaches_100_percent(
    server: Any, open_page: Any, start_agents: Any
) -> None:
    start_agents(server, ["db-1", "db-2", "db-3", "db-4"], "db")
    start_agents(server, ["other-1"], "other")
    page, console = open_page(server)
    expect(count(page, "connected")).to_have_text("5")

    send_to_group(page, "db", '{"seconds": 5}')

    bar = page.locator("#command-progress [role=progressbar]")
    expect(bar).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#command-progress .progress-text")).to_contain_text("100 %")
    deliveries = page.locator("#delivery-rows tr")
    expect(deliveries).to_have_count(4)
    expect(page.locator("#delivery-rows .badge.delivery-ACKNOWLEDGED")).to_have_count(4)
    expect(page.locator("#delivery-rows")).to_contain_text("SUCCESS: done")
    page.get_by_role("link", name="← All commands").click()
    listed = page.locator("#command-rows tr")
    expect(listed).to_have_count(1)
    expect(listed.locator("[role=progressbar]")).to_have_attribute("aria-valuenow", "100")
    assert console.errors == []


def test_a_rollout_from_the_form_sends_in_batches_and_completes(
    server: Any, open_page: Any, start_agents: Any
) -> None:
    start_agents(server, ["roll-1", "roll-2", "roll-3"], "roll")
    page, console = open_page(server)
    expect(count(page, "connected")).to_have_text("3")
    form = page.locator("#send-form")
    page.get_by_role("link", name="Send a command").click()
    form.get_by_label("a group's LIVE agents").check()
    form.get_by_label("Group", exact=True).fill("roll")
    form.get_by_label("send in batches").check()
    form.get_by_label("Batch size").fill("1")
    form.get_by_label("Max failures").fill("0")

    form.get_by_role("button", name="Send", exact=True).click()

    expect(page.locator("#command-progress [role=progressbar]")).to_have_attribute(
        "aria-valuenow", "100"
    )
    fields = page.locator("#command-fields")
    expect(fields).to_contain_text("COMPLETED")
    expect(fields).to_contain_text("batches of 1, max failures 0")
    expect(page.locator("#delivery-rows .badge.delivery-ACKNOWLEDGED")).to_have_count(3)
    assert console.errors == []


def test_a_rollout_for_one_agent_cannot_be_asked_for(server: Any, open_page: Any) -> None:
    page, _ = open_page(server, "/ui/#/send")
    form = page.locator("#send-form")

    expect(form.get_by_label("send in batches")).to_be_disabled()  # the contract says 400
    form.get_by_label("a group's LIVE agents").check()
    expect(form.get_by_label("send in batches")).to_be_enabled()


def test_bad_json_is_refused_in_the_page_and_nothing_is_sent(
    server: Any, open_page: Any, start_agents: Any
) -> None:
    start_agents(server, ["db-1"], "db")
    page, console = open_page(server)
    expect(page.locator("#stream-status")).to_have_text("Live")

    send_to_group(page, "db", '{"seconds": 5,')

    expect(page.locator("#send-message")).to_contain_text("The payload is not valid JSON")
    expect(page.locator("#send-payload-error")).to_contain_text("not valid JSON")
    expect(page.get_by_label("Payload (a JSON object)")).to_have_attribute("aria-invalid", "true")
    assert not any("/api/v1/agents/groups/" in url for url in console.urls)


def test_sending_to_all_asks_for_confirmation_first(
    server: Any, open_page: Any, start_agents: Any
) -> None:
    start_agents(server, ["a-1", "a-2"], "a")
    page, console = open_page(server)
    expect(count(page, "LIVE")).to_have_text("2")
    page.get_by_role("link", name="Send a command").click()
    page.get_by_label("every LIVE agent").check()

    page.get_by_role("button", name="Send", exact=True).click()

    confirm = page.locator("#send-confirm")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text("every LIVE agent (2 now)")
    assert not any(url.endswith("/api/v1/agents/commands") for url in console.urls)
    page.get_by_role("button", name="Back").click()
    expect(confirm).to_be_hidden()

    page.get_by_role("button", name="Send", exact=True).click()
    page.get_by_role("button", name="Yes, send to all").click()

    expect(page.locator("#command-progress [role=progressbar]")).to_have_attribute(
        "aria-valuenow", "100"
    )
    assert console.errors == []


def test_an_agent_view_shows_its_fields_and_recent_deliveries(
    server: Any, open_page: Any, start_agents: Any
) -> None:
    start_agents(server, ["api-1"], "api")
    page, console = open_page(server)
    page.get_by_role("link", name="api-1").click()
    page.get_by_role("link", name="Send a command to this agent").click()
    expect(page.get_by_label("Agent id")).to_have_value("api-1")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator("#command-progress [role=progressbar]")).to_have_attribute(
        "aria-valuenow", "100"
    )

    page.locator("#delivery-rows").get_by_role("link", name="api-1").click()

    fields = page.locator("#agent-fields")
    expect(fields).to_contain_text("api")
    expect(fields).to_contain_text("3.2.1")
    expect(page.locator("#agent-deliveries tr")).to_have_count(1)
    expect(page.locator("#agent-deliveries")).to_contain_text("ACKNOWLEDGED")
    assert console.errors == []


def test_a_command_can_be_cancelled_from_its_view(server: Any, open_page: Any) -> None:
    import httpx

    httpx.post(f"{server.url}/api/v1/agents/register", json={"id": "idle-1", "group": "idle"})
    page, console = open_page(server)  # no stream open: the delivery stays PENDING
    send_to_group(page, "idle", "{}")
    expect(page.locator("#command-progress [role=progressbar]")).to_have_attribute(
        "aria-valuenow", "0"
    )

    page.get_by_role("button", name="Cancel command").click()

    expect(page.locator("#command-message")).to_contain_text("Cancelled")
    expect(page.locator("#delivery-rows")).to_contain_text("CANCELLED")
    expect(page.get_by_role("button", name="Cancel command")).to_be_hidden()
    assert console.errors == []


def test_the_views_are_reached_by_keyboard(server: Any, open_page: Any) -> None:
    page, _ = open_page(server)
    expect(page.locator("#stream-status")).to_have_text("Live")

    tabs = page.locator("nav.tabs a")
    assert wait_until(lambda: tabs.count() == 3, 5)
    page.locator("nav.tabs a[data-view=agents]").focus()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")

    expect(page.locator("#view-commands")).to_be_visible()
    expect(page.locator("nav.tabs a[data-view=commands]")).to_have_attribute("aria-current", "page")
    for control in page.locator("#send-form input, #send-form select, #send-form textarea").all():
        label = control.evaluate("c => c.labels.length ? c.labels[0].textContent.trim() : ''")
        assert label, f"unlabelled control: {control.evaluate('c => c.outerHTML')}"


def test_at_phone_width_nothing_overflows_the_screen(server: Any, open_page: Any) -> None:
    page, console = open_page(server, viewport=PHONE)
    expect(page.locator("#stream-status")).to_have_text("Live")

    for view in ("#/agents", "#/commands", "#/send"):
        page.evaluate("hash => { location.hash = hash; }", view)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{view}: the page is {width} px wide"
    assert console.errors == []

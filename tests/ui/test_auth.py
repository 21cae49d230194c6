"""The dashboard with auth on: it asks for a token, keeps it in the tab's sessionStorage,
sends it as ``Authorization: Bearer`` (the event stream too: read with fetch, not
EventSource), never in a URL, and shows a 401 or 403 as a sentence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.secured import enrollment_token, operator_token, secured_env
from tests.ui.conftest import NO_PLAYWRIGHT, QUICK, send_to_group

expect = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT).expect

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(start_server: Any, tmp_path: Path) -> Any:
    return start_server(secured_env(tmp_path, **QUICK))


def refusals_only(errors: list[str]) -> bool:
    """The browser logs each refused fetch as a console error: those, and nothing else."""
    return all("status of 401" in error or "status of 403" in error for error in errors)


def enter_token(page: Any, token: str) -> None:
    page.get_by_label("Token (kept in this tab only").fill(token)
    page.get_by_role("button", name="Use this token").click()


def test_the_page_asks_for_a_token_and_goes_live_with_it(
    server: Any, open_page: Any, start_agents: Any
) -> None:
    start_agents(server, ["sec-1", "sec-2"], "sec", token=enrollment_token())
    page, console = open_page(server)
    events = []
    page.on("request", lambda request: "/api/v1/events" in request.url and events.append(request))

    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#token-reason")).to_contain_text("401 UNAUTHENTICATED")
    token = operator_token("viewer")
    enter_token(page, token)

    expect(dialog).to_be_hidden()
    expect(page.locator("#stream-status")).to_have_text("Live")
    expect(page.locator("#count-connected")).to_have_text("2")
    expect(page.locator("#agent-rows tr")).to_have_count(2)
    assert events and events[-1].headers["authorization"] == f"Bearer {token}"
    assert not any(token in url for url in console.urls)
    assert page.evaluate("sessionStorage.getItem('agent-registry.token')") == token
    assert refusals_only(console.errors), console.errors

    page.reload()  # the same tab keeps its token: no prompt
    expect(page.locator("#stream-status")).to_have_text("Live")
    expect(dialog).to_be_hidden()


def test_a_403_is_shown_as_a_message(server: Any, open_page: Any) -> None:
    page, console = open_page(server)
    enter_token(page, operator_token("viewer"))
    expect(page.locator("#stream-status")).to_have_text("Live")

    send_to_group(page, "sec", "{}")

    message = page.locator("#send-message")
    expect(message).to_contain_text("Your token may not do this (403 FORBIDDEN)")
    expect(message).to_contain_text("Role 'viewer' may not do this")
    assert refusals_only(console.errors), console.errors


def test_a_bad_token_asks_again_and_forget_clears_it(server: Any, open_page: Any) -> None:
    page, console = open_page(server)
    enter_token(page, "not-a-jwt")

    expect(page.locator("#token-dialog")).to_be_visible()
    expect(page.locator("#token-reason")).to_contain_text("UNAUTHENTICATED")
    page.get_by_role("button", name="Forget the token").click()

    assert page.evaluate("sessionStorage.getItem('agent-registry.token')") is None
    assert refusals_only(console.errors), console.errors

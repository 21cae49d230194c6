"""Browser tests of the dashboard: Debian's chromium, driven by Playwright, against a real
gunicorn server, with simulated agents (the SDK) that register, hold streams and ack.

Playwright's own browser downloads are never used (``playwright install`` needs a network
this project does not have): the browser is the system's ``/usr/bin/chromium``. Without it
(or without the ``playwright`` package) every test here is skipped with one reason.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent_registry.client.agent import AgentClient
from harness.gunicorn import GunicornServer

CHROMIUM = Path("/usr/bin/chromium")
WIDE = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Waits on the page (Playwright's expect polls until then).
SECONDS = 10_000
# Short intervals, so that agents go STALE and streams notice a lost peer in a test's time.
QUICK = {
    "AGENT_REGISTRY_HEARTBEAT_INTERVAL_SECONDS": "0.3",
    "AGENT_REGISTRY_STALE_AFTER_SECONDS": "1.5",
    "AGENT_REGISTRY_DEAD_AFTER_SECONDS": "600",
    "AGENT_REGISTRY_SWEEP_INTERVAL_SECONDS": "0.1",
    "AGENT_REGISTRY_KEEPALIVE_SECONDS": "1",
}
# Set to 1 to rewrite docs/dashboard.png (test_screenshot.py); the normal run writes nothing.
UPDATE_SCREENSHOT = os.environ.get("UPDATE_SCREENSHOT") == "1"
COMMAND_TYPES = ("config-update", "deep-trace", "replay")
NO_PLAYWRIGHT = "playwright is not installed: make install (it is in the dev extras)"


@pytest.fixture(scope="session")
def sync_playwright() -> Callable[[], Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(NO_PLAYWRIGHT)
    if not CHROMIUM.exists():
        pytest.skip(f"chromium not found at {CHROMIUM}: apt-get install chromium")
    return sync_playwright


@pytest.fixture(scope="module")
def browser(sync_playwright: Callable[[], Any]) -> Iterator[Any]:
    """One browser per module (each test opens its own context). Playwright's sync API runs
    on a greenlet: started before any test's leak check looks, and ended with the module."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


@dataclass
class Console:
    """What the page said: console errors and uncaught exceptions, and every request URL."""

    errors: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def watch(self, page: Any) -> Any:
        page.on(
            "console", lambda message: message.type == "error" and self.errors.append(message.text)
        )
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        page.on("request", lambda request: self.urls.append(request.url))
        return page


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., tuple[Any, Console]]]:
    """Open the dashboard of ``server`` in a fresh context (its own sessionStorage); every
    context is closed after the test."""
    contexts: list[Any] = []

    def open_page(
        server: GunicornServer, path: str = "/", viewport: dict[str, int] = WIDE
    ) -> tuple[Any, Console]:
        console = Console()
        context = browser.new_context(viewport=viewport)
        contexts.append(context)
        page = console.watch(context.new_page())
        page.set_default_timeout(SECONDS)
        page.goto(server.url + path)
        return page, console

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def start_agents() -> Iterator[Callable[..., list[AgentClient]]]:
    """Start SDK agents that hold their streams, heartbeat and ack every command; each is
    stopped after the test (or before, by the test)."""
    started: list[AgentClient] = []

    def start(
        server: GunicornServer, ids: list[str], group: str, token: str | None = None
    ) -> list[AgentClient]:
        agents = [
            AgentClient(
                server.url,
                agent_id,
                group,
                version="3.2.1",
                capabilities={"deep-trace": True},
                handlers={kind: lambda command: "done" for kind in COMMAND_TYPES},
                enrollment_token=token,
            )
            for agent_id in ids
        ]
        started.extend(agent.start() for agent in agents)
        for agent in agents:
            assert agent.wait_ready(10), f"{agent.agent_id} did not connect"
        return agents

    yield start
    for agent in started:
        agent.stop()


def send_to_group(page: Any, group: str, payload: str) -> None:
    """Fill the send form for a group and press Send, as an operator would."""
    page.get_by_role("link", name="Send a command").click()
    form = page.locator("#send-form")
    form.get_by_label("Type").select_option("deep-trace")
    form.get_by_label("a group's LIVE agents").check()
    form.get_by_label("Group", exact=True).fill(group)
    form.get_by_label("Payload (a JSON object)").fill(payload)
    form.get_by_role("button", name="Send", exact=True).click()

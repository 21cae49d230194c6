"""The page's pure functions, run in the browser itself (no Node toolchain): the SSE parser,
the payload and rollout checks of the send form, and the id-prefix search's cursor."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from harness.gunicorn import GunicornServer

    with GunicornServer("real", tmp_path_factory.mktemp("ui-modules"), label="ui-modules") as s:
        yield s


@pytest.fixture(scope="module")
def run(server: Any, browser: Any) -> Any:
    """Evaluate a function body in a page of the server's origin, with ``m`` the module
    ``/ui/<name>.js``."""
    page = browser.new_page()
    page.goto(f"{server.url}/healthz")

    def run(module: str, body: str, argument: Any = None) -> Any:
        script = f"async (arg) => {{ const m = await import('/ui/{module}.js'); {body} }}"
        return page.evaluate(script, argument)

    return run


PARSE = """
    const events = [];
    const parser = new m.SseParser((event) => events.push(event));
    for (const chunk of arg) parser.push(chunk);
    return {events, retry: parser.retry};
"""


@pytest.mark.parametrize(
    ("chunks", "events"),
    [
        pytest.param(
            ['retry: 5000\n: connected\n\nevent: fleet\ndata: {"LIVE":1}\n\n'],
            [{"type": "fleet", "data": '{"LIVE":1}', "id": ""}],
            id="the server's opening, then one event",
        ),
        pytest.param(
            ["event: agent\r", "\ndata: a\r\n", "\r\n"],
            [{"type": "agent", "data": "a", "id": ""}],
            id="CRLF split between two chunks is one line end",
        ),
        pytest.param(
            ["data: one\ndata: two\nid: 7\n\n: ping\n\n"],
            [{"type": "message", "data": "one\ntwo", "id": "7"}],
            id="several data lines join; a comment dispatches nothing",
        ),
        pytest.param(
            ["event: command\ndata:", "x\n\nevent: fleet\n\ndata:  y\n"],
            [{"type": "command", "data": "x", "id": ""}],
            id="an event without data is not dispatched; an unfinished one waits",
        ),
    ],
)
def test_the_sse_parser_reads_the_wire_format(run: Any, chunks: list[str], events: list) -> None:
    parsed = run("sse", PARSE, chunks)

    assert parsed["events"] == events


def test_the_sse_parser_keeps_the_retry_the_server_asked_for(run: Any) -> None:
    assert run("sse", PARSE, ["retry: 5000\n\n"])["retry"] == 5000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ('{"seconds": 30}', {"seconds": 30}),
        ("{bad", "The payload is not valid JSON"),
        ("[1, 2]", "The payload must be a JSON object"),
        ("null", "The payload must be a JSON object"),
    ],
)
def test_the_payload_is_checked_before_sending(run: Any, text: str, expected: Any) -> None:
    parsed = run(
        "send", "const v = m.parsePayload(arg); return v instanceof Error ? v.message : v;", text
    )

    if isinstance(expected, str):
        assert parsed.startswith(expected)
    else:
        assert parsed == expected


ROLLOUT = """
    const data = new FormData();
    for (const [name, value] of Object.entries(arg)) data.set(name, value);
    const v = m.parseRollout(data);
    return v instanceof Error ? v.message : v;
"""


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"batchSize": "10%", "maxFailures": "", "batchIntervalSeconds": "0"},
            {"batchSize": "10%", "batchIntervalSeconds": 0},
        ),
        (
            {"batchSize": "50", "maxFailures": "5%", "batchIntervalSeconds": "2.5"},
            {"batchSize": 50, "maxFailures": "5%", "batchIntervalSeconds": 2.5},
        ),
        ({"batchSize": "0", "maxFailures": "", "batchIntervalSeconds": ""}, "Batch size must be"),
        (
            {"batchSize": "1", "maxFailures": "101%", "batchIntervalSeconds": ""},
            "Max failures must",
        ),
        (
            {"batchSize": "1", "maxFailures": "", "batchIntervalSeconds": "-1"},
            "Batch interval must",
        ),
    ],
)
def test_rollout_options_become_the_contracts_rollout_object(
    run: Any, fields: dict[str, str], expected: Any
) -> None:
    parsed = run("send", ROLLOUT, {"rollout": "on", **fields})

    if isinstance(expected, str):
        assert parsed.startswith(expected)
    else:
        assert parsed == expected


def test_without_the_box_ticked_there_is_no_rollout(run: Any) -> None:
    assert run("send", ROLLOUT, {"batchSize": "10"}) is None


@pytest.mark.parametrize("prefix", ["agent-0", "a", "Z", "x.1", "web:7"])
def test_the_prefix_cursor_sorts_just_before_every_id_with_that_prefix(
    run: Any, prefix: str
) -> None:
    after = run("agents", "return m.afterForPrefix(arg);", prefix)

    alphabet = "-.0123456789:ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
    below = prefix[:-1] + chr(ord(prefix[-1]) - 1)
    assert after < prefix
    assert all(below + c < after for c in alphabet)  # every shorter-prefixed id stays before
    assert all(after < prefix + c for c in alphabet)

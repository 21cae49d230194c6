"""The SSE encoder, byte for byte."""

from __future__ import annotations

import json
import math

import pytest

from agent_registry.core.models import Command, CommandType, Target, TargetKind
from agent_registry.streams import sse
from harness.clock import T0

COMMAND_ID = "0192f8c4-3c1a-7b2e-9f00-123456789abc"


# --- comments ------------------------------------------------------------------------------


def test_ping_is_a_comment_line_and_a_blank_line():
    assert sse.PING == b": ping\n\n"
    assert sse.comment("ping") == b": ping\n\n"


def test_an_empty_comment_is_a_lone_colon():
    assert sse.comment() == b":\n\n"
    assert sse.comment("") == b":\n\n"


def test_a_comment_keeps_non_ascii_as_utf8():
    assert sse.comment("héllo ✓") == ": héllo ✓\n\n".encode()
    assert sse.comment("héllo ✓") == b": h\xc3\xa9llo \xe2\x9c\x93\n\n"


@pytest.mark.parametrize("text", ["two\nlines", "carriage\rreturn", "crlf\r\n", "\n"])
def test_a_comment_with_a_line_break_is_refused(text):
    with pytest.raises(ValueError, match="comment"):
        sse.comment(text)


# --- the opening bytes -----------------------------------------------------------------------


def test_opening_sets_retry_then_says_connected():
    assert sse.OPENING == b"retry: 5000\n: connected\n\n"
    assert sse.RECONNECT_MS == 5000


# --- events --------------------------------------------------------------------------------


def test_an_event_with_data_only():
    assert sse.event("hello") == b"data: hello\n\n"


def test_an_event_writes_retry_id_event_then_data():
    frame = sse.event("{}", event_id="42", event_type="deep-trace", retry_ms=3000)

    assert frame == b"retry: 3000\nid: 42\nevent: deep-trace\ndata: {}\n\n"


def test_event_field_order_does_not_depend_on_argument_order():
    frame = sse.event("x", retry_ms=1, event_type="t", event_id="i")

    assert frame == b"retry: 1\nid: i\nevent: t\ndata: x\n\n"


def test_an_event_with_an_id_and_no_type():
    assert sse.event("x", event_id="7") == b"id: 7\ndata: x\n\n"


def test_an_event_with_a_type_and_no_id():
    assert sse.event("x", event_type="replay") == b"event: replay\ndata: x\n\n"


def test_retry_is_written_as_whole_milliseconds():
    assert sse.event("x", retry_ms=2500) == b"retry: 2500\ndata: x\n\n"


def test_event_data_keeps_non_ascii_as_utf8():
    assert sse.event("zürich ☃") == b"data: z\xc3\xbcrich \xe2\x98\x83\n\n"


@pytest.mark.parametrize("field", ["data", "event_id", "event_type"])
@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\r\nb", "trailing\n"])
def test_a_field_value_with_a_line_break_is_refused(field, value):
    kwargs = {"data": "ok", field: value}

    with pytest.raises(ValueError, match="single line"):
        sse.event(**kwargs)


# --- JSON on one line ------------------------------------------------------------------------


def test_json_line_is_compact():
    assert sse.json_line({"a": 1, "b": [1, 2], "c": {"d": None}}) == (
        '{"a":1,"b":[1,2],"c":{"d":null}}'
    )


def test_json_line_keeps_key_order():
    assert sse.json_line({"z": 1, "a": 2}) == '{"z":1,"a":2}'


def test_json_line_keeps_non_ascii_characters_instead_of_escaping_them():
    line = sse.json_line({"city": "Zürich", "emoji": "🚀", "kanji": "東京"})

    assert line == '{"city":"Zürich","emoji":"🚀","kanji":"東京"}'
    assert "\\u" not in line


def test_json_line_escapes_line_breaks_so_the_data_stays_one_line():
    line = sse.json_line({"text": "first\nsecond\r\nthird\rfourth"})

    assert line == '{"text":"first\\nsecond\\r\\nthird\\rfourth"}'
    assert "\n" not in line and "\r" not in line
    assert sse.event(line) == b'data: {"text":"first\\nsecond\\r\\nthird\\rfourth"}\n\n'


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_json_line_refuses_nan_and_infinity_which_are_not_json(number):
    # Python's json writes NaN/Infinity by default; no JSON parser on the agent side (RFC 8259,
    # Jackson's defaults) reads them, so the data line would be unreadable.
    with pytest.raises(ValueError):
        sse.json_line({"payload": {"ratio": number}})


def test_json_line_of_a_scalar():
    assert sse.json_line("x") == '"x"'
    assert sse.json_line(1.5) == "1.5"


# --- command frames --------------------------------------------------------------------------


def _command(payload: dict, command_type: CommandType = CommandType.DEEP_TRACE) -> Command:
    return Command(
        id=COMMAND_ID,
        type=command_type,
        payload=payload,
        target=Target(TargetKind.AGENT, "order-svc-7f9c"),
        created_at=T0 + 0.123,
        expires_at=T0 + 60.123,
    )


def test_command_frame_exact_bytes():
    frame = sse.command_frame(_command({"routeId": "route-a", "depth": 3}))

    assert frame == (
        b"id: 0192f8c4-3c1a-7b2e-9f00-123456789abc\n"
        b"event: deep-trace\n"
        b'data: {"commandId":"0192f8c4-3c1a-7b2e-9f00-123456789abc","type":"deep-trace",'
        b'"payload":{"routeId":"route-a","depth":3},'
        b'"issuedAt":"2026-03-11T10:15:30.123Z","expiresAt":"2026-03-11T10:16:30.123Z"}\n'
        b"\n"
    )


def test_command_frame_uses_the_wire_name_of_the_type():
    frame = sse.command_frame(_command({}, CommandType.CONFIG_UPDATE))

    assert b"\nevent: config-update\n" in frame
    assert b'"type":"config-update"' in frame


def test_command_frame_with_a_multiline_non_ascii_payload_is_one_data_line_of_utf8():
    frame = sse.command_frame(_command({"note": "Grüße\nzweite Zeile"}))

    lines = frame.split(b"\n")
    assert lines[0] == b"id: " + COMMAND_ID.encode()
    assert lines[1] == b"event: deep-trace"
    assert lines[2].startswith(b"data: ")
    assert lines[3:] == [b"", b""]
    assert b"Gr\xc3\xbc\xc3\x9fe\\nzweite Zeile" in lines[2]
    data = json.loads(lines[2][len(b"data: ") :].decode("utf-8"))
    assert data == {
        "commandId": COMMAND_ID,
        "type": "deep-trace",
        "payload": {"note": "Grüße\nzweite Zeile"},
        "issuedAt": "2026-03-11T10:15:30.123Z",
        "expiresAt": "2026-03-11T10:16:30.123Z",
    }

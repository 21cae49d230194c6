"""The load generator's parsers: bytes as they come off a socket in, responses and events out."""

from __future__ import annotations

import asyncio

import pytest

from bench.http_client import (
    Client,
    EventReader,
    ResponseReader,
    dechunk,
    request_bytes,
)


def chunked(*chunks: bytes) -> bytes:
    """A chunked body with these chunks and the last (empty) one."""
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


def reads(data: bytes) -> list[list[bytes]]:
    """``data`` in one read, then cut in two at every offset (the cut falls in every field)."""
    return [[data], *([data[:i], data[i:]] for i in range(1, len(data)))]


# --------------------------------------------------------------------------- dechunk


def test_dechunk_moves_complete_chunks_and_reports_the_last() -> None:
    raw, out = bytearray(chunked(b"hello ", b"world") + b"NEXT"), bytearray()

    assert dechunk(raw, out) is True
    assert out == b"hello world"
    assert raw == b"NEXT"


def test_dechunk_keeps_an_incomplete_chunk_until_the_rest_arrives() -> None:
    raw, out = bytearray(b"5\r\nhel"), bytearray()

    assert dechunk(raw, out) is False
    assert out == b""
    assert raw == b"5\r\nhel"

    raw += b"lo\r\n"
    assert dechunk(raw, out) is False
    assert out == b"hello"
    assert raw == b""


def test_dechunk_ignores_chunk_extensions() -> None:
    raw, out = bytearray(b"3;name=value\r\nabc\r\n0\r\n\r\n"), bytearray()

    assert dechunk(raw, out) is True
    assert out == b"abc"


# --------------------------------------------------------------------------- responses


def read_all(reader: ResponseReader, pieces: list[bytes]) -> list[tuple[int, bytes]]:
    return [response for piece in pieces for response in reader.feed(piece)]


CONTENT_LENGTH = (
    b"HTTP/1.1 201 CREATED\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n"
    b'{"id": "a-1"}'
)
CHUNKED = b"HTTP/1.1 202 ACCEPTED\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(
    b'{"commandId":', b' "c-1"}'
)


def test_a_content_length_response_however_it_is_split_across_reads() -> None:
    for pieces in reads(CONTENT_LENGTH):
        assert read_all(ResponseReader(), pieces) == [(201, b'{"id": "a-1"}')], pieces


def test_a_chunked_response_with_a_chunk_split_across_reads() -> None:
    for pieces in reads(CHUNKED):
        assert read_all(ResponseReader(), pieces) == [(202, b'{"commandId": "c-1"}')], pieces


def test_responses_without_a_body_and_back_to_back_responses() -> None:
    reader = ResponseReader()
    data = b"HTTP/1.1 204 NO CONTENT\r\n\r\n" + CHUNKED + CONTENT_LENGTH

    assert reader.feed(data) == [
        (204, b""),
        (202, b'{"commandId": "c-1"}'),
        (201, b'{"id": "a-1"}'),
    ]
    assert reader.keep_alive is True


def test_connection_close_ends_keep_alive() -> None:
    reader = ResponseReader()

    reader.feed(
        b"HTTP/1.1 503 SERVICE UNAVAILABLE\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )

    assert reader.keep_alive is False


# --------------------------------------------------------------------------- event streams

STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
OPENING = b"retry: 5000\n: connected\n\n"
COMMAND = b'id: c-1\nevent: deep-trace\ndata: {"commandId":"c-1"}\n\n'
PING = b": ping\n\n"
EVENT_STREAM = STREAM_HEAD + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (OPENING, COMMAND))
BLOCKS = [b"retry: 5000\n: connected", b'id: c-1\nevent: deep-trace\ndata: {"commandId":"c-1"}']


def read_blocks(reader: EventReader, pieces: list[bytes]) -> list[bytes]:
    return [block for piece in pieces for block in reader.feed(piece)]


def test_a_chunked_event_stream_with_a_chunk_split_across_reads() -> None:
    for pieces in reads(EVENT_STREAM):
        assert read_blocks(EventReader(), pieces) == BLOCKS, pieces


def test_several_events_in_one_chunk_and_one_event_over_two_chunks() -> None:
    body = OPENING + COMMAND[:10]
    data = STREAM_HEAD + b"%x\r\n%s\r\n" % (len(body), body)
    data += b"%x\r\n%s\r\n" % (len(COMMAND) - 10 + len(PING), COMMAND[10:] + PING)

    assert read_blocks(EventReader(), [data]) == [*BLOCKS, b": ping"]


def test_an_event_stream_without_chunked_framing() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"

    assert read_blocks(EventReader(), [head + OPENING[:7], OPENING[7:] + COMMAND]) == BLOCKS


def test_a_refused_stream_yields_no_events() -> None:
    reader = EventReader()
    refusal = b"HTTP/1.1 404 NOT FOUND\r\nContent-Length: 2\r\n\r\n{}"

    assert reader.feed(refusal) == []
    assert reader.head is not None
    assert reader.head.status == 404


# --------------------------------------------------------------------------- requests


def test_a_request_carries_extra_headers_after_its_own() -> None:
    data = request_bytes(
        "127.0.0.1:8080",
        "POST",
        "/api/v1/agents/a-1/heartbeat",
        headers=(("Authorization", "Bearer abc.def.ghi"),),
    )

    assert data == (
        b"POST /api/v1/agents/a-1/heartbeat HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        b"Content-Length: 0\r\nAuthorization: Bearer abc.def.ghi\r\n\r\n"
    )


def test_a_request_with_a_body_and_without_extra_headers() -> None:
    data = request_bytes("h:1", "POST", "/r", b'{"id":"a"}')

    assert data == (
        b"POST /r HTTP/1.1\r\nHost: h:1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 10\r\n\r\n{"id":"a"}'
    )


@pytest.mark.parametrize(
    "header", [("Authorization", "Bearer x\r\nX-Evil: 1"), ("X-A\nB", "v"), ("X:Y", "v")]
)
def test_a_header_that_would_break_the_request_is_refused(header: tuple[str, str]) -> None:
    with pytest.raises(ValueError):
        request_bytes("h:1", "GET", "/r", headers=(header,))


def test_the_client_sends_the_headers_it_is_given_on_the_wire() -> None:
    async def exchange() -> list[bytes]:
        heads: list[bytes] = []

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for _ in range(2):  # two requests on one keep-alive connection
                heads.append(await reader.readuntil(b"\r\n\r\n"))
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = Client("127.0.0.1", port)
        try:
            token = (("Authorization", "Bearer t-1"),)
            assert await client.request("POST", "/hb", headers=token) == (204, b"")
            assert await client.request("POST", "/hb") == (204, b"")
        finally:
            client.close()
            server.close()
            await server.wait_closed()
        return heads

    first, second = asyncio.run(exchange())

    assert b"\r\nAuthorization: Bearer t-1\r\n" in first
    assert b"Authorization" not in second

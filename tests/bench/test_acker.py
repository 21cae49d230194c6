"""The load generator's acker opens its connections one at a time, each answered before the
next connects: a burst of them could be handed mostly to one worker (docs/performance.md)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from bench.http_client import LOOPBACK
from bench.load_scenarios.acks import Acker

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


async def serve_and_ack(connections: int) -> tuple[list[tuple[str, int, bytes]], dict[str, Any]]:
    """What a server saw, in order (each connection's opening and its requests' first lines),
    from an acker that opened and then sent one ack."""
    seen: list[tuple[str, int, bytes]] = []
    ended: list[asyncio.Event] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = len(ended)
        ended.append(asyncio.Event())
        seen.append(("open", number, b""))
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                seen.append(("request", number, head.split(b"\r\n")[0]))
                writer.write(OK)
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass  # the acker closed the connection
        finally:
            writer.close()
            await writer.wait_closed()
            ended[number].set()

    server = await asyncio.start_server(answer, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    acker = Acker(LOOPBACK, port, connections, [LOOPBACK], inline=True)
    try:
        await acker.open()
        acker.on_command(SimpleNamespace(agent_id="a-1"), b"c-1", 0.0)
        await acker.drain(timeout=5)
        await asyncio.wait_for(asyncio.gather(*(end.wait() for end in ended)), timeout=5)
    finally:
        server.close()
        await server.wait_closed()
    return seen, acker.figures(1, 1, 0.0, None)


def test_each_connection_is_answered_before_the_next_opens_then_acks_flow() -> None:
    seen, figures = asyncio.run(serve_and_ack(3))

    opening = [(kind, number) for kind, number, _ in seen[:6]]
    assert opening == [(kind, n) for n in range(3) for kind in ("open", "request")]
    assert {line for _, _, line in seen[:6]} - {b""} == {b"GET /healthz HTTP/1.1"}
    ack = b"POST /api/v1/agents/a-1/commands/c-1/ack HTTP/1.1"
    assert [line for _, _, line in seen[6:]] == [ack]
    assert figures["ok"] == 1 and figures["all_ok"]

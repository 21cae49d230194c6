"""The cancel event on the wire, and what the stream writer records for it."""

from __future__ import annotations

from collections.abc import Sequence

from agent_registry.streams import sse
from agent_registry.streams.hub import StreamHub, cancel_key, is_command_key
from agent_registry.streams.writer import event_stream

COMMAND_ID = "0192f8c4-3c1a-7b2e-9f00-123456789abc"


def test_the_cancel_event_is_event_cancel_with_the_command_id_and_no_id_field() -> None:
    assert sse.cancel_frame(COMMAND_ID) == (
        b'event: cancel\ndata: {"commandId":"0192f8c4-3c1a-7b2e-9f00-123456789abc"}\n\n'
    )


def test_cancel_keys_are_not_command_keys() -> None:
    assert cancel_key(COMMAND_ID) == f"cancel:{COMMAND_ID}"
    assert not is_command_key(cancel_key(COMMAND_ID))
    assert is_command_key(COMMAND_ID)


def test_the_writer_writes_a_cancel_event_without_recording_a_delivery() -> None:
    hub = StreamHub(queue_size=8)
    written: list[tuple[str, list[str]]] = []

    def on_written(agent_id: str, command_ids: Sequence[str]) -> None:
        written.append((agent_id, list(command_ids)))

    stream = event_stream(hub, "a", None, 15.0, on_written)
    assert next(stream) == sse.OPENING
    hub.deliver(["a"], COMMAND_ID, b"the command\n\n")
    hub.deliver(["a"], cancel_key(COMMAND_ID), sse.cancel_frame(COMMAND_ID))

    assert next(stream) == b"the command\n\n" + sse.cancel_frame(COMMAND_ID)
    hub.deliver(["a"], cancel_key("another"), sse.cancel_frame("another"))
    assert next(stream) == sse.cancel_frame("another")  # the burst before is recorded now
    assert written == [("a", [COMMAND_ID])]
    hub.end("a")
    assert list(stream) == []  # ended; the lone cancel event recorded nothing
    assert written == [("a", [COMMAND_ID])]
    assert len(hub) == 0

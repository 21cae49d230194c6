"""An agent's event stream read through the Flask test client, chunk by chunk."""

from __future__ import annotations

from collections.abc import Iterator

import gevent
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from agent_registry.streams.sse import OPENING


class Stream:
    """An agent's event stream, opened through the test client."""

    def __init__(self, client: FlaskClient, agent_id: str) -> None:
        self.response: TestResponse = client.get(
            f"/api/v1/agents/{agent_id}/events", buffered=False
        )
        assert self.response.status_code == 200
        self._chunks: Iterator[bytes] = iter(self.response.response)
        assert next(self._chunks) == OPENING

    def next_chunk(self) -> bytes:
        """The next bytes written; only call it when something is queued (or the stream
        was told to end): otherwise it waits for the keepalive."""
        return next(self._chunks)

    def ended(self) -> bool:
        try:
            self.next_chunk()
        except StopIteration:
            return True
        return False

    def close(self) -> None:
        self.response.close()
        gevent.sleep(0)  # let the delivery recorder's flush run

"""A client that stops reading costs bounded memory: its stream is ended, nothing is lost."""

from __future__ import annotations

import socket

import httpx
import pytest

pytestmark = pytest.mark.e2e


def test_a_client_that_stops_reading_is_disconnected_and_its_commands_stay_pending(
    start_server,
):
    server = start_server({"AGENT_REGISTRY_STREAM_QUEUE_SIZE": "4"})
    with httpx.Client(base_url=server.url, timeout=10) as http:
        http.post("/api/v1/agents/register", json={"id": "slow-1", "group": "slow"})
        # A raw socket with a tiny receive buffer that reads the opening, then nothing more.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        try:
            sock.sendall(b"GET /api/v1/agents/slow-1/events HTTP/1.1\r\nHost: x\r\n\r\n")
            opening = b""
            while b": connected" not in opening:
                opening += sock.recv(4096)
            payload = {"blob": "x" * 50_000}
            sent_ids = []
            for _ in range(400):
                answer = http.post(
                    "/api/v1/agents/slow-1/commands", json={"type": "replay", "payload": payload}
                )
                assert answer.status_code == 202
                sent_ids.append(answer.json()["commandId"])
                if not http.get("/api/v1/agents/slow-1").json()["connected"]:
                    break
            else:
                pytest.fail("400 commands to a client that never reads did not end its stream")
        finally:
            sock.close()

        statuses = [
            http.get(f"/api/v1/commands/{command_id}").json()["deliveries"][0]["status"]
            for command_id in sent_ids
        ]
        # What reached the socket buffers counts as DELIVERED; what was still queued or
        # refused when the stream ended stays PENDING, ready to be re-sent.
        assert statuses[-1] == "PENDING"
        assert set(statuses) <= {"DELIVERED", "PENDING"}

"""HTTP/1.1 over a raw socket, for requests no HTTP client sends (malformed ones) and for
watching exactly which connection an answer came on and whether the server closed it."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes
    closed: bool  # the server closed the connection after the answer

    @property
    def json(self) -> dict[str, object]:
        value: dict[str, object] = json.loads(self.body)
        return value


def request(method: str, target: str, *headers: str, body: bytes = b"") -> bytes:
    """One request's bytes, with ``Host`` and, for a body, its JSON type and length."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *headers]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def exchange(port: int, raw: bytes, timeout: float = 10.0) -> Answer:
    """Send ``raw`` whole on a new connection, read one answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        return read_answer(sock)


def read_answer(sock: socket.socket) -> Answer:
    """One answer with a Content-Length (or none); with ``Connection: close``, also wait
    for the server to close."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65_536)
        if not chunk:
            raise ConnectionError(f"connection closed before an answer: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65_536)
        if not chunk:
            raise ConnectionError("connection closed inside the body")
        body += chunk
    closed = headers.get("connection") == "close" and sock.recv(1) == b""
    return Answer(int(status_line.split()[1]), headers, body, closed)

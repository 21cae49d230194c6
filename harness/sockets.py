"""Listening sockets bound here and handed to a child, so no other process can take the port."""

from __future__ import annotations

import socket

HOST = "127.0.0.1"


def listening_socket(host: str = HOST, backlog: int = 2048) -> socket.socket:
    """A TCP socket bound to a kernel-chosen port and listening, inheritable by children.

    Connections made before the child accepts wait in the backlog instead of failing.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def unused_port(host: str = HOST) -> int:
    """A port nothing listens on right now: only for a server that retries when it loses
    the race (redis-server) or for a client that must find nobody there."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port

"""What the kernel knows about our child processes, read from ``/proc`` (Linux only)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

_ESTABLISHED = "01"  # a socket's state in /proc/net/tcp


def children(pid: int) -> list[int]:
    """Direct children of a process (gunicorn's workers are the master's children)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                found.extend(int(child) for child in f.read().split())
    return sorted(found)


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def _tcp_sockets() -> Iterator[tuple[int, int, str, int]]:
    """Each IPv4 TCP socket in ``/proc/net/tcp``: local port, remote port, state, inode."""
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, remote = fields[1], fields[2]
            yield (
                int(local.split(":")[1], 16),
                int(remote.split(":")[1], 16),
                fields[3],
                int(fields[9]),
            )


def _tcp_inode(local_port: int, remote_port: int) -> int | None:
    """The inode of the IPv4 TCP socket from ``local_port`` to ``remote_port``, if any."""
    return next(
        (
            inode
            for local, remote, _, inode in _tcp_sockets()
            if (local, remote) == (local_port, remote_port)
        ),
        None,
    )


def connection_owner(server_port: int, client_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` holds the server end of the connection from ``client_port``."""
    inode = _tcp_inode(server_port, client_port)
    if inode is None:
        return None
    return next((pid for pid in pids if inode in _socket_inodes(pid)), None)


def established_per_process(server_port: int, pids: list[int]) -> dict[int, int]:
    """How many established TCP connections to ``server_port`` each of ``pids`` holds the
    server end of (IPv4; one read of ``/proc/net/tcp``)."""
    established = {
        inode
        for local, _, state, inode in _tcp_sockets()
        if state == _ESTABLISHED and local == server_port
    }
    return {pid: len(_socket_inodes(pid) & established) for pid in pids}

"""What the kernel knows about our child processes, read from ``/proc`` (Linux only)."""

from __future__ import annotations

import contextlib
import os


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


def _tcp_inode(local_port: int, remote_port: int) -> int | None:
    """The inode of the IPv4 TCP socket from ``local_port`` to ``remote_port``, if any."""
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], int(fields[9])
            if int(local.split(":")[1], 16) == local_port and (
                int(remote.split(":")[1], 16) == remote_port
            ):
                return inode
    return None


def connection_owner(server_port: int, client_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` holds the server end of the connection from ``client_port``."""
    inode = _tcp_inode(server_port, client_port)
    if inode is None:
        return None
    return next((pid for pid in pids if inode in _socket_inodes(pid)), None)


def established_per_process(server_port: int, pids: list[int]) -> dict[int, int]:
    """How many established TCP connections to ``server_port`` each of ``pids`` holds the
    server end of (IPv4; one read of ``/proc/net/tcp``)."""
    established = set()
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].split(":")[1], 16) == server_port:
                established.add(int(fields[9]))
    return {pid: len(_socket_inodes(pid) & established) for pid in pids}

"""What the kernel knows about our child processes, read from ``/proc`` (Linux only)."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Iterable, Iterator

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


def _holders(inodes: set[int], pids: list[int]) -> dict[int, int]:
    """How many of the sockets ``inodes`` each of ``pids`` has open."""
    return {pid: len(_socket_inodes(pid) & inodes) for pid in pids}


def _tcp_sockets() -> Iterator[tuple[int, str, str, int]]:
    """Each IPv4 TCP socket in ``/proc/net/tcp``: local port, remote address (as the table
    writes it, ``_table_address``), state, inode."""
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            yield int(fields[1].split(":")[1], 16), fields[2], fields[3], int(fields[9])


def _table_address(host: str, port: int) -> str:
    """An IPv4 ``host:port`` as ``/proc/net/tcp`` writes it: the address's four bytes read
    as one native integer, then the port, both in hex."""
    address = int.from_bytes(socket.inet_aton(host), sys.byteorder)
    return f"{address:08X}:{port:04X}"


def _remote_port(address: str) -> int:
    return int(address.split(":")[1], 16)


def _tcp_inode(local_port: int, remote_port: int) -> int | None:
    """The inode of the IPv4 TCP socket from ``local_port`` to ``remote_port``, if any."""
    return next(
        (
            inode
            for local, remote, _, inode in _tcp_sockets()
            if (local, _remote_port(remote)) == (local_port, remote_port)
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
    return _holders(established, pids)


def held_per_process(
    server_port: int, clients: Iterable[tuple[str, int]], pids: list[int]
) -> dict[int, int]:
    """How many of the connections from ``clients`` (each one's local host and port) each
    of ``pids`` holds the server end of. Only those connections count: others that open
    or close meanwhile do not, as they do in a difference of ``established_per_process``."""
    peers = {_table_address(host, port) for host, port in clients}
    held = {
        inode
        for local, remote, state, inode in _tcp_sockets()
        if state == _ESTABLISHED and local == server_port and remote in peers
    }
    return _holders(held, pids)

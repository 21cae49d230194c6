"""BalancedServer: of several workers woken for one connection, the least loaded accepts it.

Two servers in this process share one listening socket, as gunicorn's workers do; each
holds some connections (greenlets parked in its pool). Connections arrive one at a time,
each once both servers are done waiting for the previous one: a worker whose wait ends
just as the next connection arrives takes it without a new wait (see BalancedServer).
"""

from __future__ import annotations

import socket
import time

import gevent
import gevent.socket
from gevent.pool import Pool

from agent_registry.server.gunicorn_worker import BalancedServer, accept_delay_per_connection


class Recorder:
    """A handler that only notes which server accepted the connection."""

    def __init__(self, sock: gevent.socket.socket, address: object, server: Server) -> None:
        self.sock, self.server = sock, server

    def handle(self) -> None:
        self.server.accepted += 1
        self.sock.close()


class Server(BalancedServer):
    """Counts what it accepted, and the waits it began and ended."""

    accepted = waits_begun = waits_ended = 0

    def _do_read(self) -> None:
        timer = self._timer
        super()._do_read()
        self.waits_begun += self._timer is not timer

    def _accept_after_delay(self) -> None:
        super()._accept_after_delay()
        self.waits_ended += 1


def serving(listener: socket.socket, holding: int, delay: float) -> Server:
    listener.setblocking(False)
    pool = Pool()
    for _ in range(holding):
        pool.spawn(gevent.sleep, 3600)
    # A SERVER_NAME given: pywsgi would look the host's name up on gevent's thread pool.
    environ = {"SERVER_NAME": "127.0.0.1"}
    server = Server(listener, application=None, spawn=pool, handler_class=Recorder, environ=environ)
    server.delay_per_connection = delay
    server.max_accept = 1  # what pywsgi sets with several workers
    server.start()
    return server


def stop(*servers: Server) -> None:
    for server in servers:
        server.pool.kill()  # the parked greenlets
        server.stop()


def wait_for(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not accepted in time"
        gevent.sleep(0.001)


def waiting(server: Server) -> bool:
    return server.waits_begun != server.waits_ended


def connect_one_at_a_time(port: int, count: int, servers: list[Server]) -> None:
    for expected in range(1, count + 1):
        client = socket.create_connection(("127.0.0.1", port))
        wait_for(lambda expected=expected: sum(s.accepted for s in servers) == expected)
        wait_for(lambda: not any(waiting(server) for server in servers))
        client.close()


def _pair(busier: tuple[int, float], idler: tuple[int, float]) -> tuple[Server, Server, int]:
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    port = listener.getsockname()[1]
    # Each its own descriptor of the one listening socket, as forked workers have.
    servers = serving(listener.dup(), *busier), serving(listener.dup(), *idler)
    listener.close()
    return *servers, port


def test_the_worker_holding_fewer_connections_accepts_each_one():
    busy, idle, port = _pair((3, 0.002), (1, 0.002))  # waits of 6 ms and 2 ms
    try:
        connect_one_at_a_time(port, 20, [busy, idle])
        assert (busy.accepted, idle.accepted) == (0, 20)
    finally:
        stop(busy, idle)


def test_a_lone_worker_never_waits_and_several_do():
    assert accept_delay_per_connection(2) == accept_delay_per_connection(8) > 0
    lone, other, port = _pair((50, accept_delay_per_connection(1)), (0, 0.0))
    stop(other)  # left alone on the socket
    try:
        connect_one_at_a_time(port, 5, [lone])
        assert (lone.accepted, lone.waits_begun) == (5, 0)
    finally:
        stop(lone)

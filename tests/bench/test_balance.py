"""The balance figure: connections counted per process from /proc, and the verdict."""

from __future__ import annotations

import os
import socket

from bench.balance import render
from harness.procfs import established_per_process, held_per_process


def test_only_the_server_ends_of_established_connections_to_the_port_are_counted():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    accepted = [listener.accept()[0] for _ in clients]
    try:
        assert established_per_process(port, [os.getpid()]) == {os.getpid(): 3}
        accepted.pop().close()
        clients.pop().close()
        assert established_per_process(port, [os.getpid()]) == {os.getpid(): 2}
    finally:
        for sock in [*clients, *accepted, listener]:
            sock.close()


def test_only_the_named_clients_connections_are_counted_by_address_and_port():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def connect(host: str, local_port: int = 0) -> socket.socket:
        client = socket.socket()
        client.bind((host, local_port))
        client.connect(("127.0.0.1", port))
        return client

    others = [connect("127.0.0.1") for _ in range(2)]
    named = [connect("127.0.0.2") for _ in range(3)]
    # Another client from the same port as a named one, on another address.
    twin = connect("127.0.0.3", named[0].getsockname()[1])
    accepted = [listener.accept()[0] for _ in range(6)]
    me = os.getpid()
    try:
        addresses = [client.getsockname() for client in named]
        assert held_per_process(port, addresses, [me]) == {me: 3}
        for client in others:
            client.close()
        assert held_per_process(port, addresses, [me]) == {me: 3}
        assert held_per_process(port, [twin.getsockname()], [me]) == {me: 1}
    finally:
        for sock in [*named, twin, *accepted, listener]:
            sock.close()


def test_a_worker_over_one_and_a_half_times_its_share_is_named():
    results = [
        {
            "mode": "storm",
            "workers": 3,
            "opened": 3000,
            "seconds_to_open": 1.5,
            "per_worker": [990, 1000, 1010],
            "busiest_over_fair_share": 1.01,
        },
        {
            "mode": "one by one",
            "workers": 3,
            "opened": 3000,
            "seconds_to_open": 9.0,
            "per_worker": [600, 850, 1550],
            "busiest_over_fair_share": 1.55,
        },
    ]

    text = render(results)

    assert "| storm | 3 | 3,000 | 1.5 | 990, 1,000, 1,010 | 1.01 |" in text
    assert "| one by one | 3 | 3,000 | 9.0 | 600, 850, 1,550 | 1.55 (over 1.5) |" in text

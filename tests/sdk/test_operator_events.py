"""RegistryApi.operator_events: typed events, reconnects with backoff, refusals raised.

The server is an httpx mock transport that answers each connection in turn; sleeping is
recorded instead of done.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import httpx
import pytest

from agent_registry.client.api import ApiError, RegistryApi
from agent_registry.client.backoff import Backoff
from agent_registry.client.operator_events import (
    AgentEvent,
    CommandEvent,
    FleetEvent,
    StreamState,
)

OPENING = b"retry: 5000\n: connected\n\n"
FLEET = (
    b'event: fleet\ndata: {"LIVE":2,"STALE":0,"DEAD":1,"connected":2,'
    b'"at":"2026-03-11T10:15:30.123Z"}\n\n'
)
AGENT = b'event: agent\ndata: {"id":"a1","group":"g","state":"STALE","connected":true}\n\n'
DELETED = (
    b'event: agent\ndata: {"id":"a2","group":"g","state":"DEAD","connected":false,'
    b'"deleted":true}\n\n'
)
COMMAND = b'event: command\ndata: {"commandId":"c1","summary":{"targets":1}}\n\n'
UNKNOWN = b'event: something-new\ndata: {"x":1}\n\n'


def stream(*blocks: bytes) -> httpx.Response:
    return httpx.Response(
        200, headers={"Content-Type": "text/event-stream"}, content=b"".join(blocks)
    )


def api_answering(*answers: Callable[[httpx.Request], httpx.Response]) -> tuple[RegistryApi, list]:
    requests: list[httpx.Request] = []
    turns = itertools.chain(answers, itertools.repeat(lambda request: httpx.Response(503)))

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return next(turns)(request)

    return RegistryApi(
        "http://registry.test", transport=httpx.MockTransport(answer), token="t0k"
    ), requests


def test_events_are_typed_and_the_connection_state_comes_between_them() -> None:
    api, requests = api_answering(
        lambda r: stream(OPENING, FLEET, AGENT, DELETED, UNKNOWN, COMMAND)
    )

    events = list(api.operator_events(reconnect=False))

    assert events == [
        StreamState(connected=True),
        FleetEvent({"LIVE": 2, "STALE": 0, "DEAD": 1, "connected": 2}, "2026-03-11T10:15:30.123Z"),
        AgentEvent({"id": "a1", "group": "g", "state": "STALE", "connected": True}),
        AgentEvent(
            {"id": "a2", "group": "g", "state": "DEAD", "connected": False, "deleted": True}
        ),
        CommandEvent({"commandId": "c1", "summary": {"targets": 1}}),
        StreamState(connected=False, reason="the server ended the stream"),
    ]
    assert [e.deleted for e in events if isinstance(e, AgentEvent)] == [False, True]
    assert events[1].as_json() == {
        "event": "fleet",
        "data": {
            "LIVE": 2,
            "STALE": 0,
            "DEAD": 1,
            "connected": 2,
            "at": "2026-03-11T10:15:30.123Z",
        },
    }
    assert requests[0].url.path == "/api/v1/events"
    assert requests[0].headers["Authorization"] == "Bearer t0k"


def test_group_is_passed_as_the_query() -> None:
    api, requests = api_answering(lambda r: stream(OPENING))

    list(api.operator_events("order-service", reconnect=False))

    assert requests[0].url.params["group"] == "order-service"


def test_a_drop_or_a_5xx_is_retried_with_backoff_and_the_server_retry_as_base() -> None:
    api, requests = api_answering(
        lambda r: stream(OPENING, FLEET),  # ends: reconnect after about retry (5 s)
        lambda r: httpx.Response(
            503, json={"status": 503, "code": "STORE_UNAVAILABLE", "message": "Redis is down."}
        ),
        lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused", request=r)),
        lambda r: stream(OPENING, AGENT),
    )
    slept: list[float] = []
    backoff = Backoff(base=1.0, cap=30.0, jitter=0.0)

    events = api.operator_events(backoff=backoff, sleep=slept.append)
    seen = list(itertools.islice(events, 7))

    states = [e for e in seen if isinstance(e, StreamState)]
    assert [s.connected for s in states] == [True, False, False, False, True]
    assert "ended" in states[1].reason and "Redis is down" in states[2].reason
    assert "Cannot reach" in states[3].reason
    assert slept == [5.0, 10.0, 20.0]  # the server's retry: 5000 is the base, doubling
    assert [s.retry_in for s in states[1:4]] == slept
    assert isinstance(seen[-1], AgentEvent)
    assert len(requests) == 4


@pytest.mark.parametrize(
    ("status", "code"), [(401, "UNAUTHENTICATED"), (403, "FORBIDDEN"), (400, "VALIDATION_FAILED")]
)
def test_a_refusal_is_raised_not_retried(status: int, code: str) -> None:
    api, requests = api_answering(
        lambda r: httpx.Response(status, json={"status": status, "code": code, "message": "No."})
    )

    with pytest.raises(ApiError) as raised:
        list(api.operator_events(sleep=lambda seconds: None))

    assert raised.value.code == code
    assert len(requests) == 1

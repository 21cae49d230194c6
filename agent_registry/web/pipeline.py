"""One request pipeline: every request passes it, whether a fast view answers it or Flask.

The pipeline sits in front of Flask as WSGI middleware. For each request it

1. decides the route with Flask's own URL map (the blueprint rules; the fast views' rules
   compiled from it first, see ``fast_routes.py``); Flask matches the same map again for
   the views it serves, and a declared view checks that both agree;
2. runs every hook's ``before`` (metrics and request logs plug in here), then the guard's
   ``authenticate`` (``auth.py``, with auth on: a bad or missing token is 401 before
   anything else);
3. runs the checks of ``checks.py`` in the contract's order and loads the declared inputs,
   then the guard's ``authorize`` (403, after validation and before existence);
4. calls a view declared ``fast`` directly and writes its answer itself, skipping Flask's
   request and response objects (heartbeat and ack are most of the traffic); hands every
   other request to Flask with its inputs loaded;
5. runs every hook's ``after`` as the answer starts, on both paths and for errors too.

Any failure becomes the JSON error shape through ``errors.error_payload``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from time import perf_counter
from typing import TYPE_CHECKING, Any, Protocol

from flask import Flask
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from .checks import (
    AGENTS_PREFIX,
    PROTOCOL_HEADER,
    SUPPORTED_PROTOCOL_VERSIONS,
    Environ,
    check_protocol,
    load_body,
    load_query,
    read_body,
)
from .declare import INPUTS_KEY, BodyRule, DeclaredView, answer_of
from .errors import error_payload
from .fast_routes import AUTOMATIC_METHODS, FastRoutes

if TYPE_CHECKING:
    from ..security.tokens import Caller
    from ..server.runtime import Runtime
    from .auth import Guard

WSGIApp = Callable[[Environ, Callable[..., Any]], Iterable[bytes]]
StartResponse = Callable[..., Any]
Headers = list[tuple[str, str]]

log = logging.getLogger(__name__)

_PROTOCOL = (PROTOCOL_HEADER, SUPPORTED_PROTOCOL_VERSIONS[-1])


class Call:
    """One request as the hooks see it: what was asked, and which route answers it."""

    __slots__ = (
        "caller",
        "endpoint",
        "environ",
        "method",
        "path",
        "path_args",
        "route",
        "started",
    )

    def __init__(self, environ: Environ) -> None:
        self.environ = environ
        self.method: str = environ["REQUEST_METHOD"]
        path: str = environ.get("PATH_INFO", "")
        if not path.isascii():
            # WSGI hands the path over as latin-1; werkzeug's request.path decodes it so too.
            path = path.encode("latin-1").decode("utf-8", "replace")
        self.path = path
        self.endpoint: str | None = None
        self.route: str | None = None  # the rule template, e.g. /api/v1/agents/<agent_id>
        self.path_args: Mapping[str, Any] = {}
        self.started = perf_counter()  # for the hooks that time requests
        self.caller: Caller | None = None  # who the token says is calling (auth on)


class RequestHook(Protocol):
    def before(self, call: Call) -> None:
        """Runs first, before any check; raising a domain error refuses the request."""

    def after(self, call: Call, status: int, headers: Headers) -> None:
        """Runs as the answer starts, for every answer; may add headers. What it raises is
        logged and ignored: the answer is already decided."""


class RequestPipeline:
    def __init__(
        self, app: WSGIApp, flask_app: Flask, runtime: Runtime, *, fast: bool = True
    ) -> None:
        self._app = app
        # Nothing here matches on host names, so one adapter serves every request.
        self._urls = flask_app.url_map.bind("localhost")
        self._views = flask_app.view_functions
        undeclared = sorted(
            endpoint
            for endpoint, view in self._views.items()
            if not isinstance(view, DeclaredView) and endpoint != "static"
        )
        if undeclared:  # an undeclared view would be authenticated but never authorized
            raise RuntimeError(f"views without a declaration (web/declare.py): {undeclared}")
        fast_endpoints = [
            endpoint
            for endpoint, view in self._views.items()
            if isinstance(view, DeclaredView) and view.spec.fast
        ]
        self._fast_routes = FastRoutes(flask_app.url_map, fast_endpoints if fast else [])
        self._runtime = runtime
        self._limit = runtime.settings.max_body_bytes
        self._fast = fast
        self.hooks: list[RequestHook] = []
        self.guard: Guard | None = None  # with auth on

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        call = Call(environ)
        respond = self._responder(call, start_response)
        try:
            view, routing_error = self._route(call)
            for hook in self.hooks:
                hook.before(call)
            spec = view.spec if view is not None else None
            if self.guard is not None:
                self.guard.authenticate(call, spec.access if spec is not None else None)
            check_protocol(environ)
            if isinstance(routing_error, RequestRedirect):
                return self._app(environ, respond)  # Flask redirects: it knows the real host
            if routing_error is not None:
                raise routing_error
            inputs = self._inputs(call, view)
            if spec is not None:
                # OPTIONS names the allowed methods only: a token suffices (authenticate).
                if self.guard is not None and call.method != "OPTIONS":
                    self.guard.authorize(call, spec.access, inputs)
                if spec.access.names_caller:
                    inputs["caller"] = call.caller
            if view is not None and self._answers_fast(view, call):
                status, value = answer_of(
                    view.spec, view.handler(self._runtime, **call.path_args, **inputs)
                )
                return _json(respond, status, value)
        except Exception as exc:
            status, body, headers = error_payload(exc, environ)
            return _json(respond, status, body, list(headers.items()))
        environ[INPUTS_KEY] = (call.endpoint, inputs)
        return self._app(environ, respond)

    def _answers_fast(self, view: DeclaredView, call: Call) -> bool:
        return self._fast and view.spec.fast and call.method not in AUTOMATIC_METHODS

    def _route(self, call: Call) -> tuple[DeclaredView | None, HTTPException | None]:
        try:
            rule, path_args = self._fast_routes.match(call.path, call.method) or self._urls.match(
                call.path, call.method, return_rule=True
            )
        except HTTPException as exc:  # a RequestRedirect too: Flask answers that one
            return None, exc
        call.endpoint, call.route, call.path_args = rule.endpoint, rule.rule, path_args
        view = self._views.get(rule.endpoint)
        return (view if isinstance(view, DeclaredView) else None), None

    def _inputs(self, call: Call, view: DeclaredView | None) -> dict[str, Any]:
        spec = view.spec if view is not None else None
        raw = b""
        if call.method == "POST":
            rule = spec.body_rule if spec is not None else BodyRule.NONE
            raw = read_body(call.environ, rule, self._limit)
        query = load_query(call.environ, spec)
        inputs: dict[str, Any] = {}
        if spec is not None and spec.query is not None:
            inputs["query"] = query
        if spec is not None and spec.body is not None and call.method == "POST":
            inputs["body"] = load_body(raw, spec)
        return inputs

    def _responder(self, call: Call, start_response: StartResponse) -> StartResponse:
        answered = False

        def respond(status: str, headers: Headers, exc_info: Any = None) -> Any:
            nonlocal answered
            if call.path.startswith(AGENTS_PREFIX):
                headers.append(_PROTOCOL)
            if answered:  # start_response again, with exc_info: the hooks saw this answer
                return start_response(status, headers, exc_info)
            answered = True
            for hook in self.hooks:
                try:
                    hook.after(call, int(status[:3]), headers)
                except Exception:  # a broken hook must not break the answer
                    log.exception(
                        "request hook %r failed after %s %s", hook, call.method, call.path
                    )
            return start_response(status, headers, exc_info)

        return respond


def _json(
    respond: StartResponse, status: int, value: Any, extra: Headers | None = None
) -> list[bytes]:
    """Write an answer: a JSON value, or no body at all for ``None``."""
    headers = extra or []
    if value is None:
        respond(_status_line(status), headers)
        return []
    payload = json.dumps(value, separators=(",", ":")).encode()
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(payload))),
        *headers,
    ]
    respond(_status_line(status), headers)
    return [payload]


_STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}


def _status_line(status: int) -> str:
    return _STATUS_LINES[status]

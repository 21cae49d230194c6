"""What each view takes and answers, declared where the view is defined.

``@declare(...)`` under a blueprint route states the view's body, query and response
schemas and its status. The request pipeline reads the declaration to check and load the
inputs before the view runs, and the OpenAPI document is generated from the same
declarations, so validation and documentation have one source.

A view is a plain function of the runtime, its path arguments and its loaded inputs
(``body=``, ``query=``, and ``caller=`` when its ``access`` names the caller) that returns
the answer's JSON value (or a ``Reply`` with another status). A view declared ``fast``
must use nothing else (no ``flask.request``, no ``url_for``): the pipeline calls it
directly, without Flask's request and response objects.
Other views are called through Flask, so they may use Flask's request context and return a
Flask response (the event stream does).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from flask import Response, current_app, jsonify, request
from marshmallow import Schema

from ..security.access import Access

# Where the pipeline leaves (endpoint, loaded inputs) for the Flask side of a view.
INPUTS_KEY = "agent_registry.inputs"


class BodyRule(Enum):
    NONE = "none"  # no body is read as input (the heartbeat: any body is ignored)
    REQUIRED = "required"  # a JSON object body
    OPTIONAL = "optional"  # a JSON object body, or none at all (the ack)


@dataclass(frozen=True, slots=True)
class ViewSpec:
    summary: str
    access: Access = field(kw_only=True)  # who may call it, with auth on
    status: int = 200
    body: Schema | None = None
    body_optional: bool = False
    query: Schema | None = None
    response: Schema | None = None
    # Other successful answers: status -> what it means (registration answers 200 or 201).
    other_statuses: tuple[tuple[int, str], ...] = ()
    media_type: str = "application/json"
    fast: bool = False
    # Part of the OpenAPI document; the dashboard's page and files are not API (web/ui.py).
    documented: bool = True
    body_rule: BodyRule = field(init=False)

    def __post_init__(self) -> None:
        rule = BodyRule.NONE
        if self.body is not None:
            rule = BodyRule.OPTIONAL if self.body_optional else BodyRule.REQUIRED
        object.__setattr__(self, "body_rule", rule)


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer with a status other than the declared one."""

    value: Any
    status: int


Handler = Callable[..., Any]


class DeclaredView:
    """A view with its declaration; Flask calls it as the view function."""

    def __init__(self, handler: Handler, spec: ViewSpec) -> None:
        functools.update_wrapper(self, handler)
        self.handler = handler
        self.spec = spec

    def __call__(self, **path_args: Any) -> Any:
        endpoint, inputs = request.environ.get(INPUTS_KEY, (None, {}))
        if endpoint != request.endpoint:
            raise RuntimeError(
                f"the request pipeline routed to {endpoint!r}, Flask to {request.endpoint!r}"
            )
        answer = self.handler(current_app.extensions["agent_registry"], **path_args, **inputs)
        if isinstance(answer, Response):
            return answer
        status, value = answer_of(self.spec, answer)
        if value is None:
            response = Response(status=status)
            del response.headers["Content-Type"]  # no body, so no media type
            return response
        return jsonify(value), status


def declare(summary: str, **details: Any) -> Callable[[Handler], DeclaredView]:
    """Declare a view (see the module docstring); ``details`` are ``ViewSpec`` fields."""
    spec = ViewSpec(summary, **details)
    return lambda handler: DeclaredView(handler, spec)


def answer_of(spec: ViewSpec, answer: Any) -> tuple[int, Any]:
    """(status, JSON value) of what a view returned; ``None`` is an empty answer."""
    if isinstance(answer, Reply):
        return answer.status, answer.value
    return spec.status, answer

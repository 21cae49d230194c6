"""The OpenAPI 3.1 document, generated from the views' declarations (``declare.py``).

Every route of the URL map whose view is declared (and documented: the dashboard's files
are not) becomes an operation: its path parameters from the rule, its query parameters,
body and answer from the declared schemas, and every error answer as the one JSON error
shape. ``GET /api/v1/openapi.json`` serves it; it is built once per app, on first request.
"""

from __future__ import annotations

import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, current_app
from marshmallow import fields

from .. import package_version
from ..security.access import Access
from .declare import DeclaredView, ViewSpec, declare
from .schemas import (
    IDENTIFIER_PATTERN,
    CaseInsensitiveEnum,
    DeadOnly,
    EnumList,
    ErrorSchema,
)

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")

_DOCUMENT_KEY = "agent_registry.openapi"
_PATH_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
# Path arguments that are identifiers (API.md, Conventions); a command id is any segment.
_IDENTIFIER_ARGUMENTS = frozenset({"agent_id", "group"})
_ERROR = {"$ref": "#/components/responses/Error"}


@bp.get("/openapi.json")
@declare("This document: the OpenAPI 3.1 description of the API", access=Access.PUBLIC)
def openapi_document(_rt: object) -> dict[str, Any]:
    document: dict[str, Any] | None = current_app.extensions.get(_DOCUMENT_KEY)
    if document is None:
        document = build_document(current_app)
        current_app.extensions[_DOCUMENT_KEY] = document
    return document


def build_document(app: Flask) -> dict[str, Any]:
    marshmallow = MarshmallowPlugin()
    spec = APISpec(
        title="Agent Registry",
        version=package_version(),
        openapi_version="3.1.0",
        plugins=[marshmallow],
        info={"description": "Registration, lifecycle, SSE command push and delivery tracking."},
    )
    assert marshmallow.converter is not None
    marshmallow.converter.add_attribute_function(_custom_fields)  # type: ignore[no-untyped-call]
    spec.components.schema("Error", schema=ErrorSchema)
    spec.components.security_scheme(
        "bearer",
        {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "Needed with AGENT_REGISTRY_AUTH=on (docs/security.md)",
        },
    )
    spec.components.response(
        "Error",
        {
            "description": "Any error: the JSON error shape of API.md",
            "content": {"application/json": {"schema": "Error"}},
        },
    )
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        view = app.view_functions.get(rule.endpoint)
        if not isinstance(view, DeclaredView) or not view.spec.documented:
            continue
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        spec.path(
            path=openapi_path(rule.rule),
            operations={method.lower(): _operation(rule.endpoint, view.spec) for method in methods},
            parameters=[_path_parameter(name) for name in _PATH_ARGUMENT.findall(rule.rule)],
        )
    document = spec.to_dict()
    _plain_query_parameters(document)
    return document


def _plain_query_parameters(document: dict[str, Any]) -> None:
    """A query parameter is a string that is there or not: never ``null``, no null default."""
    for item in document["paths"].values():
        operations = [item[method] for method in item if method != "parameters"]
        for operation in operations:
            for parameter in operation.get("parameters", []):
                schema = parameter["schema"]
                schema.pop("default", None)
                if isinstance(schema.get("type"), list):
                    schema["type"] = next(kind for kind in schema["type"] if kind != "null")


def openapi_path(rule: str) -> str:
    """``/agents/<agent_id>`` (a werkzeug rule) -> ``/agents/{agent_id}`` (an OpenAPI path)."""
    return _PATH_ARGUMENT.sub(r"{\1}", rule)


def _operation(endpoint: str, spec: ViewSpec) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": endpoint.replace(".", "_"),
        "summary": spec.summary,
        "tags": [endpoint.split(".", 1)[0]],
        "responses": {**_answers(spec), "default": _ERROR},
    }
    if spec.access is Access.PUBLIC:
        operation["security"] = []
    else:
        operation["security"] = [{"bearer": []}]
        operation["description"] = _ACCESS_TEXT[spec.access]
    if spec.query is not None:
        operation["parameters"] = [{"in": "query", "schema": spec.query}]
    if spec.body is not None:
        operation["requestBody"] = {
            "required": not spec.body_optional,
            "content": {"application/json": {"schema": spec.body}},
        }
    return operation


_ACCESS_TEXT = {
    Access.READ: "With auth on: an operator token, any role.",
    Access.SEND: "With auth on: an operator token of role operator or admin whose groups "
    "include the target's group ('*' to send to all).",
    Access.ADMIN: "With auth on: an operator token of role admin.",
    Access.ENROLL: "With auth on: an operator token of role admin whose groups include "
    "every group asked for.",
    Access.HEARTBEAT: "With auth on: the agent's own current token (sub = the path's agent id).",
    Access.REGISTER: "With auth on: an enrollment token whose groups allow the body's group, "
    "or the agent's own current token (renewal).",
    Access.AGENT: "With auth on: the agent's own current token (sub = the path's agent id).",
}


def _answers(spec: ViewSpec) -> dict[str, Any]:
    content: dict[str, Any] = {}
    if spec.response is not None:
        content = {spec.media_type: {"schema": spec.response}}
    elif spec.media_type != "application/json" or spec.status != 204:
        content = {spec.media_type: {"schema": {}}}
    answer: dict[str, Any] = {"description": spec.summary}
    if content:
        answer["content"] = content
    answers = {str(spec.status): answer}
    for status, meaning in spec.other_statuses:
        answers[str(status)] = {**answer, "description": meaning}
    return answers


def _path_parameter(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "minLength": 1}
    if name in _IDENTIFIER_ARGUMENTS:
        schema = {"type": "string", "pattern": IDENTIFIER_PATTERN.replace("\\Z", "$")}
    return {"in": "path", "name": name, "required": True, "schema": schema}


def _custom_fields(
    _converter: object, field: fields.Field[Any], ret: dict[str, Any], **_kwargs: Any
) -> dict[str, Any]:
    """How our own fields read in JSON Schema (a converter method, run after apispec's)."""
    if "pattern" in ret:
        # Python's end-of-text anchor; JSON Schema patterns are ECMA-262, where it is "$".
        return {"pattern": ret["pattern"].replace("\\Z", "$")}
    if isinstance(field, EnumList):
        values = [member.value for member in field.enum]
        one = r"\s*(" + "|".join(_any_case(value) for value in values) + r")\s*"
        return {
            "type": "string",
            "pattern": f"^{one}(,{one})*$",
            "description": f"Comma-separated, any case, of: {', '.join(values)}.",
        }
    if isinstance(field, DeadOnly):
        return {"type": "string", "pattern": rf"^\s*{_any_case('DEAD')}\s*$"}
    if isinstance(field, CaseInsensitiveEnum):
        return {"type": "string", "enum": [member.value for member in field.enum]}
    return {}


def _any_case(word: str) -> str:
    """``LIVE`` -> ``[Ll][Ii][Vv][Ee]``: JSON Schema patterns have no case-insensitive flag."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)

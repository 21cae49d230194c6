"""Every answer checked against the OpenAPI document the server publishes.

``ContractClient`` is a Flask test client that validates each response it receives:
the operation is found through the app's own URL map, the status among the operation's
declared answers (any error answer is the one error shape), and the JSON body against the
declared schema (JSON Schema 2020-12, as OpenAPI 3.1 has it).
"""

from __future__ import annotations

import functools
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from werkzeug.exceptions import HTTPException
from werkzeug.test import TestResponse

from agent_registry.web.openapi import build_document, openapi_path

ERROR_SCHEMA = {"$ref": "#/components/schemas/Error"}


class ContractViolation(AssertionError):
    pass


@functools.cache
def _document() -> dict[str, Any]:
    from agent_registry import create_app

    return build_document(create_app())


def answer_schema(app: Flask, method: str, path: str, status: int) -> dict[str, Any] | str | None:
    """The JSON Schema the document gives for this answer; None when it has no body; the
    media type when the body is not JSON (``text/plain`` for ``/metrics``)."""
    document = _document()
    try:
        rule, _ = app.url_map.bind("localhost").match(path, method, return_rule=True)
    except HTTPException:
        return ERROR_SCHEMA
    operation = document["paths"][openapi_path(rule.rule)].get(method.lower())
    if operation is None:
        if method == "OPTIONS" and status >= 400:
            return ERROR_SCHEMA  # refused before Flask answers it (auth on)
        if method in ("HEAD", "OPTIONS"):
            return None  # answered by Flask for every route: not part of the document
        raise ContractViolation(f"{method} {path}: no such operation in the document")
    answer = operation["responses"].get(str(status))
    if answer is None:
        if status < 400:
            raise ContractViolation(f"{method} {path}: {status} is not a documented answer")
        return ERROR_SCHEMA
    content = answer.get("content", {})
    if "application/json" not in content:
        return next(iter(content), None)
    return content["application/json"]["schema"]


def check_answer(schema: dict[str, Any], value: Any, what: str) -> None:
    validator = Draft202012Validator(
        {**schema, "components": _document()["components"]},
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    errors = sorted(validator.iter_errors(value), key=lambda error: list(error.path))
    if errors:
        details = "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
        raise ContractViolation(f"{what} does not conform to the OpenAPI document: {details}")


class ContractClient(FlaskClient):
    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        response = super().open(*args, **kwargs)
        request = response.request
        what = f"{request.method} {request.path} -> {response.status_code}"
        if response.mimetype == "text/event-stream":
            return response  # a stream never ends: its wire format has tests of its own
        schema = answer_schema(self.application, request.method, request.path, response.status_code)
        if schema is None:
            if response.get_data():
                raise ContractViolation(f"{what}: a body where the document declares none")
            return response
        if isinstance(schema, str):
            if response.mimetype != schema:
                raise ContractViolation(f"{what}: {response.mimetype}, not {schema}")
            return response
        if response.mimetype != "application/json":
            raise ContractViolation(f"{what}: {response.mimetype}, not application/json")
        check_answer(schema, response.get_json(), what)
        return response

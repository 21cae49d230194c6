"""A request body parsed as JSON under the contract's rules for hostile input (API.md, v1.1).

Valid UTF-8, no lone surrogates (raw or ``\\u``-escaped), finite numbers only, at most
``MAX_DEPTH`` levels of nesting (a body field's value is level 1), no duplicate member
names. Whatever passes can be stored and read back as JSON by any client, and encoded for an
event stream, so no request fails half-way after it changed something.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 32

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# A JSON string (escapes included) or one bracket: what the depth scan looks at.
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]]')
# Only an escape can put a surrogate into a string once the bytes decoded as UTF-8.
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


class BodyRefused(ValueError):
    """The body breaks one of the rules; the message names it."""


def parse_body(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")  # strict: refuses encoded surrogates (b"\xed\xa0\x80") too
    except UnicodeDecodeError as exc:
        raise BodyRefused(
            f"The request body is not valid UTF-8 (byte {exc.start}: {exc.reason})."
        ) from None
    if _nests_too_deep(text):
        raise _too_deep()  # found before parsing, which would recurse as deep as the body
    try:
        value = json.loads(
            text, parse_constant=_constant, parse_float=_finite, object_pairs_hook=_unique
        )
    except BodyRefused:
        raise
    except RecursionError:  # a body the depth scan misread (it is not valid JSON anyway)
        raise _too_deep() from None
    except ValueError as exc:
        raise BodyRefused(f"The request body is not valid JSON: {exc}.") from None
    if _ESCAPED_SURROGATE.search(text):
        _check_strings(value)
    return value


def _constant(name: str) -> None:
    """NaN and Infinity are not JSON (RFC 8259); the Java agents' parsers reject them."""
    raise BodyRefused(f"The request body holds {name}, which is not a JSON value.")


def _finite(number: str) -> float:
    value = float(number)
    if not math.isfinite(value):
        raise BodyRefused(
            f"The request body holds {number}, which is no finite number: only finite "
            "numbers are accepted."
        )
    return value


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object, refusing a name given twice (a proxy reading the first would see another
    value than the registry, which would keep the last)."""
    members: dict[str, Any] = {}
    for name, value in pairs:
        if name in members:
            raise BodyRefused(f"The request body names the member '{name}' twice in one object.")
        members[name] = value
    return members


def _nests_too_deep(text: str) -> bool:
    """More than the body and MAX_DEPTH containers open at once, strings skipped."""
    if text.count("{") + text.count("[") <= MAX_DEPTH + 1:
        return False  # too few brackets to nest that deep: most bodies stop here
    open_containers = 0
    for token in _STRING_OR_BRACKET.finditer(text):
        bracket = token.group()
        if bracket in "{[":
            open_containers += 1
            if open_containers > MAX_DEPTH + 1:
                return True
        elif bracket in "}]":
            open_containers -= 1
    return False


def _check_strings(body: Any) -> None:
    """No lone surrogate in any member name or string, without recursion."""
    pending: list[Any] = [body]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            _no_lone_surrogate(value)
        elif isinstance(value, dict):
            for name, member in value.items():
                _no_lone_surrogate(name)
                pending.append(member)
        elif isinstance(value, list):
            pending.extend(value)


def _no_lone_surrogate(text: str) -> None:
    found = _LONE_SURROGATE.search(text)
    if found is not None:
        raise BodyRefused(
            f"The request body holds a lone surrogate (\\u{ord(found.group()):04x}) in a "
            "string: JSON text must be valid Unicode."
        )


def _too_deep() -> BodyRefused:
    return BodyRefused(
        f"The request body nests deeper than {MAX_DEPTH} levels (a field's value is level 1)."
    )

"""The fast views' rules as one regular expression each, compiled from the URL map.

werkzeug's general matcher costs about as much as a whole heartbeat. For the rules of the
views declared ``fast``, the pipeline first tries this: a regex built from the rule itself
(static segments literally, each ``<name>`` as the default converter's ``[^/]+``). It is
used only for a rule that no other rule of the map could match the same path as (checked
here, segment by segment, when the app is built), so whenever it matches, werkzeug would
have chosen that rule too; anything else goes to werkzeug. The blueprint rules stay the
one place routes are defined.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from werkzeug.routing import Map, Rule, UnicodeConverter

# ``<name>``: an argument with no converter named, so the map's default one.
_ARGUMENT = re.compile(r"^<([A-Za-z_][A-Za-z0-9_]*)>$")
_DEFAULT_ARGUMENT = "[^/]+"  # what werkzeug's default converter, UnicodeConverter, matches
# Answered by Flask for every rule (OPTIONS), or from the GET view (HEAD): never fast.
AUTOMATIC_METHODS = frozenset({"HEAD", "OPTIONS"})


class FastRoutes:
    def __init__(self, url_map: Map, endpoints: Iterable[str]) -> None:
        wanted = set(endpoints)
        rules = list(url_map.iter_rules())
        if url_map.converters["default"] is not UnicodeConverter:
            wanted = set()  # an argument may mean something else: leave every rule to werkzeug
        self._routes = [
            (_regex(rule), rule, frozenset(rule.methods or ()) - AUTOMATIC_METHODS)
            for rule in rules
            if rule.endpoint in wanted
            and _simple(rule)
            and not any(other is not rule and _may_overlap(rule, other) for other in rules)
        ]

    def __len__(self) -> int:
        return len(self._routes)

    def match(self, path: str, method: str) -> tuple[Rule, Mapping[str, Any]] | None:
        for regex, rule, methods in self._routes:
            found = regex.match(path)
            if found is not None and method in methods:
                return rule, found.groupdict()
        return None


def _segments(rule: Rule) -> list[str]:
    return rule.rule.split("/")


def _simple(rule: Rule) -> bool:
    """Every segment is plain text or one argument of the default converter, and matching
    the rule does nothing else (no defaults to add, no redirect, no alias, no websocket)."""
    if rule.defaults or rule.redirect_to or rule.alias or rule.websocket:
        return False
    return all("<" not in part or _ARGUMENT.match(part) for part in _segments(rule))


def _regex(rule: Rule) -> re.Pattern[str]:
    parts = [
        f"(?P<{found.group(1)}>{_DEFAULT_ARGUMENT})"
        if (found := _ARGUMENT.match(part))
        else re.escape(part)
        for part in _segments(rule)
    ]
    return re.compile("/".join(parts) + r"\Z")


def _may_overlap(fast: Rule, other: Rule) -> bool:
    """Whether ``other`` could match some path ``fast`` matches. Two segments that are both
    plain text and differ, before ``other`` has anything but plain text and simple arguments,
    keep them apart; so does a different number of segments (both rules are then simple)."""
    mine, theirs = _segments(fast), _segments(other)
    for index, part in enumerate(theirs):
        if "<" in part and not _ARGUMENT.match(part):
            return True  # a converter that may span segments, or text mixed with arguments
        if index < len(mine) and "<" not in part + mine[index] and part != mine[index]:
            return False
    return len(mine) == len(theirs)

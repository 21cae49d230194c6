"""Every relative link in the README and docs/ leads somewhere: the file exists, and a
``#fragment`` names one of its headings as GitHub renders it. The docs cross-link by
section, and a section renamed or moved breaks those links silently otherwise."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"`[^`]*`")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (word characters,
    spaces and hyphens kept), each space a hyphen."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def _prose_lines(page: Path) -> list[str]:
    """The page's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in page.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


@cache
def anchors(page: Path) -> frozenset[str]:
    """The page's heading anchors, a repeated one numbered as GitHub numbers it (read once
    per page, however many links point into it)."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for line in _prose_lines(page):
        match = _HEADING.match(line)
        if not match:
            continue
        slug = _slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return frozenset(found)


def broken_links(page: Path) -> list[str]:
    broken = []
    for line in _prose_lines(page):
        for target in _LINK.findall(_CODE_SPAN.sub("", line)):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, mailto: ...
                continue
            path, _, fragment = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{target}: no such file")
            elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
                broken.append(f"{target}: no such heading in {linked.name}")
    return broken


def test_the_slug_is_githubs() -> None:
    assert _slug("Side by side (scenario f)") == "side-by-side-scenario-f"
    assert _slug("A slower host (2026-12-07)") == "a-slower-host-2026-12-07"
    assert _slug("Scaling with workers: `make bench BENCH_PROFILE=big`") == (
        "scaling-with-workers-make-bench-bench_profilebig"
    )
    assert _slug("A recorded ack's answer, and where redis-server's time goes") == (
        "a-recorded-acks-answer-and-where-redis-servers-time-goes"
    )


def test_a_link_to_a_missing_heading_or_file_is_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Title\n\n## Part one\n\n## Part one\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[a](other.md#part-one) [b](other.md#part-one-1) [c](#here)\n\n## Here\n"
        "[d](other.md#part-two) [e](gone.md) `[f](gone.md)`\n"
        "```\n[g](gone.md)\n```\n"
    )
    assert broken_links(page) == [
        "other.md#part-two: no such heading in other.md",
        "gone.md: no such file",
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_leads_somewhere(page: Path) -> None:
    assert broken_links(page) == []

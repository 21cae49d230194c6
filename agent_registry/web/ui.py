"""The fleet dashboard: ``/`` redirects to ``/ui/``, which serves a page of plain ES modules.

The files live in ``agent_registry/ui/static`` (package data, so a plain ``pip install .``
serves them). They are read once per app, on first use, and answered from memory with an
ETag, so a reload costs a ``304``. Only the files that directory holds are served: a name
is one path segment, looked up in that list, never joined to a path.

These views pass the request pipeline like any other (access log, metrics; the route label
is ``/ui/<name>``). They are public: the page itself asks the operator for a token and
sends it to the API in ``Authorization`` (docs/dashboard.md). They are not part of the
API, so the OpenAPI document leaves them out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import werkzeug
from flask import Blueprint, Response, current_app, redirect, request, url_for

from ..errors import PathNotFound
from ..security.access import Access
from .declare import declare

if TYPE_CHECKING:
    from ..server.runtime import Runtime

bp = Blueprint("ui", __name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "ui" / "static"
INDEX = "index.html"
_ASSETS_KEY = "agent_registry.ui_assets"

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

# The page loads nothing from elsewhere and runs no inline script; it talks to this origin
# only (fetch); nobody may frame it.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def load_assets(directory: Path = STATIC_DIR) -> dict[str, Asset]:
    """Every file of ``directory`` whose type is known, by name."""
    assets = {}
    for path in sorted(directory.iterdir()):
        media_type = MEDIA_TYPES.get(path.suffix)
        if media_type is None or not path.is_file():
            continue
        body = path.read_bytes()
        assets[path.name] = Asset(body, media_type, hashlib.sha256(body).hexdigest()[:32])
    return assets


def _assets() -> dict[str, Asset]:
    assets: dict[str, Asset] | None = current_app.extensions.get(_ASSETS_KEY)
    if assets is None:
        assets = current_app.extensions[_ASSETS_KEY] = load_assets()
    return assets


def _answer(name: str) -> Response:
    asset = _assets().get(name)
    if asset is None:
        raise PathNotFound(f"No such file of the dashboard: {name!r}.")
    response = Response(asset.body, headers=SECURITY_HEADERS)
    response.headers["Content-Type"] = asset.media_type
    response.set_etag(asset.etag)
    response.make_conditional(request)  # a 304 without a body when the ETag matches
    return response


@bp.get("/")
@declare(
    "The dashboard's address: redirects to /ui/",
    access=Access.PUBLIC,
    status=302,
    documented=False,
)
def root(_rt: Runtime) -> werkzeug.Response:
    return redirect(url_for("ui.index"))


@bp.get("/ui/")
@declare("The fleet dashboard", access=Access.PUBLIC, media_type="text/html", documented=False)
def index(_rt: Runtime) -> Response:
    return _answer(INDEX)


@bp.get("/ui/<name>")
@declare("A file of the dashboard", access=Access.PUBLIC, documented=False)
def asset(_rt: Runtime, name: str) -> Response:
    return _answer(name)

"""Process-level routes: /healthz, /readyz, /openapi.json and the scripts: /kanal.js, and
/kanal-onsite.js and /kanal-sw.js (on-site messages and web push)."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from flask import Blueprint, Response, jsonify, request

from .clock import utc_iso
from .errors import NotFound
from .openapi import openapi_document
from .runtime import get_runtime
from .store import meta
from .store.connection import DB_ERRORS

site_blueprint = Blueprint("site", __name__)


@site_blueprint.get("/healthz")
def healthz() -> Response:
    """The process answers."""
    return jsonify(status="ok")


@site_blueprint.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Ready when the database takes a write (503 otherwise)."""
    runtime = get_runtime()
    try:
        meta.put(runtime.db.conn(), "ready_check", utc_iso(runtime.clock.now()))
    except DB_ERRORS as exc:
        response = jsonify(status="unavailable", code="database", message=str(exc))
        response.headers["Retry-After"] = "5"
        return response, 503
    return jsonify(status="ready"), 200


@site_blueprint.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 description of the ingest API."""
    response = jsonify(openapi_document())
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@dataclass(frozen=True)
class _Static:
    """A static script as served: the bytes, gzip-compressed once, and their entity tags."""

    plain: bytes
    gzipped: bytes
    tag: str
    """The ETag of the plain file (unquoted); the gzipped one's is `tag` + "-gzip"."""


@lru_cache(maxsize=8)
def _static(name: str) -> _Static | None:
    try:
        data = resources.files("kanal_collector").joinpath(f"static/{name}").read_bytes()
    except FileNotFoundError:
        return None
    # mtime=0: the same bytes on every start, so the ETag of the gzipped file is stable.
    return _Static(data, gzip.compress(data, compresslevel=9, mtime=0),
                   hashlib.sha256(data).hexdigest()[:32])


def serve_static(name: str) -> Response:
    """A built script: cacheable, revalidated by ETag (If-None-Match answers 304), and
    gzip-compressed (once, when first served) for browsers that accept it."""
    found = _static(name)
    if found is None:
        raise NotFound(f"{name} is not built; run the build in js_snippet/")
    zipped = request.accept_encodings["gzip"] > 0 and len(found.gzipped) < len(found.plain)
    tag = f"{found.tag}-gzip" if zipped else found.tag
    headers = {
        "Cache-Control": "public, max-age=3600",
        "Access-Control-Allow-Origin": "*",
        "X-Content-Type-Options": "nosniff",
        "Vary": "Accept-Encoding",
    }
    # If-None-Match compares weakly (RFC 9110 13.1.2): a proxy may have weakened the tag;
    # either representation's tag names this same file.
    wanted = request.if_none_match
    if wanted.star_tag or any(wanted.contains_weak(t) for t in (found.tag,
                                                                  f"{found.tag}-gzip")):
        response = Response(status=304, headers=headers)
    else:
        response = Response(found.gzipped if zipped else found.plain,
                            mimetype="application/javascript", headers=headers)
        if zipped:
            response.headers["Content-Encoding"] = "gzip"
    response.set_etag(tag)
    return response


@site_blueprint.get("/kanal.js")
def snippet() -> Response:
    """The web snippet."""
    return serve_static("kanal.js")


@site_blueprint.get("/kanal-onsite.js")
def onsite_script() -> Response:
    """The on-site and web push code, loaded by kanal.js only when it is needed."""
    return serve_static("kanal-onsite.js")


@site_blueprint.get("/kanal-sw.js")
def service_worker() -> Response:
    """Kanal's service worker, for the shop to serve from its own origin (a service
    worker only works from the site it controls)."""
    return serve_static("kanal-sw.js")

"""Process-level routes: /healthz, /readyz, /openapi.json and the snippet at /kanal.js."""

from __future__ import annotations

import hashlib
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


@lru_cache(maxsize=1)
def _snippet() -> tuple[bytes, str]:
    try:
        data = resources.files("kanal_collector").joinpath("static/kanal.js").read_bytes()
    except FileNotFoundError:
        return b"", ""
    return data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


@site_blueprint.get("/kanal.js")
def snippet() -> Response:
    """The web snippet, cacheable and revalidated by ETag."""
    data, etag = _snippet()
    if not data:
        raise NotFound("kanal.js is not built; run the build in js_snippet/")
    headers = {
        "ETag": etag,
        "Cache-Control": "public, max-age=3600",
        "Access-Control-Allow-Origin": "*",
        "X-Content-Type-Options": "nosniff",
    }
    if etag in request.if_none_match:
        return Response(status=304, headers=headers)
    return Response(data, mimetype="application/javascript", headers=headers)

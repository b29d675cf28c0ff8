"""The Flask side of /v1: the settings document Segment's browser library fetches.

The POST routes themselves (/v1/track … /v1/batch) are served by `wsgi.IngestMiddleware`
in front of Flask: they are the hot path, and Flask's per-request machinery would cost
more than all of Kanal's own work on an event.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify, request

from ..errors import Unauthorized
from ..runtime import get_runtime

ingest_blueprint = Blueprint("ingest", __name__, url_prefix="/v1")

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Authorization, Content-Encoding",
    "Access-Control-Max-Age": "86400",
}


@ingest_blueprint.after_request
def _cors(response: Response) -> Response:
    # Any site may send events (no cookies are read, so no credentials are allowed).
    response.headers.update(CORS_HEADERS)
    return response


@ingest_blueprint.route("/projects/<write_key>/settings", methods=["GET"])
def settings(write_key: str) -> tuple[Response, int]:
    """The settings document of Segment's browser library, pointing it back here."""
    runtime = get_runtime()
    info = runtime.keys.get(write_key)
    if info is None or info.kind == "admin":
        raise Unauthorized("unknown or revoked write key", code="unknown_key")
    base = runtime.config.public_url or request.host_url
    parts = urlsplit(base)
    api_host = (parts.netloc + parts.path.rstrip("/") + "/v1")
    document = {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": api_host,
                "protocol": parts.scheme or "https",
                "unbundledIntegrations": [],
                "addBundledMetadata": True,
                "maybeBundledConfigIds": {},
            }
        },
        "plan": {
            "track": {"__default": {"enabled": True, "integrations": {}}},
            "identify": {"__default": {"enabled": True}},
            "group": {"__default": {"enabled": True}},
        },
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
    }
    response = jsonify(document)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response, 200

"""Admin routes of ads audiences.

    GET  /api/audiences               every audience: status, members, what waits, errors
    GET  /api/audiences/<name>        one audience, with its recent rounds
    POST /api/audiences/<name>/sync   ask `kanal serve`'s worker to sync it now (202)
"""

from __future__ import annotations

from flask import Response, jsonify

from ..audiences.settings import AudienceSettings, audience_settings
from ..audiences.status import all_statuses, audience_status, request_sync
from ..errors import BadRequest, NotFound
from ..runtime import get_runtime
from ..store import audiences as store
from .routes import admin_blueprint


def _settings() -> dict[str, AudienceSettings]:
    return audience_settings(get_runtime().config)


@admin_blueprint.get("/audiences")
def audiences() -> Response:
    """Every configured audience (and any with rows that is no longer configured)."""
    return jsonify(audiences=all_statuses(get_runtime().db.conn(), _settings()))


@admin_blueprint.get("/audiences/<name>")
def audience(name: str) -> Response:
    """One audience in detail."""
    conn = get_runtime().db.conn()
    found = _settings()
    if name not in found and name not in store.audiences_with_rows(conn):
        raise NotFound(f"no audience named {name!r}")
    return jsonify(audience_status(conn, name, found.get(name)))


@admin_blueprint.post("/audiences/<name>/sync")
def audience_sync(name: str) -> tuple[Response, int]:
    """Ask the audience worker to sync it at once (202: it runs in the background)."""
    runtime = get_runtime()
    found = _settings().get(name)
    if found is None:
        raise NotFound(f"no audience named {name!r}")
    if not found.enabled:
        raise BadRequest(f"audience {name!r} is disabled (enabled = false)", code="disabled")
    request_sync(runtime.db.conn(), name, int(runtime.clock.now() * 1000))
    return jsonify(name=name, requested=True), 202

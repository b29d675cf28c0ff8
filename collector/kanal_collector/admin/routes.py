"""Admin routes: events, failed events, sources, keys, counts. Never CORS-enabled."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from ..errors import BadRequest, Unauthorized
from ..runtime import get_runtime
from ..store.events import StoredEvent, count_events, recent_events, recent_failed
from ..store.keys import KeyInfo, list_keys, list_sources
from ..store.stats import daily_counts

admin_blueprint = Blueprint("admin", __name__, url_prefix="/api")


@admin_blueprint.before_request
def _require_admin() -> None:
    auth = request.authorization
    token = auth.token if auth is not None and auth.type == "bearer" else None
    if not token:
        raise Unauthorized("an admin key is required: Authorization: Bearer <admin key>",
                           code="missing_key")
    info = get_runtime().keys.get(token)
    if info is None or info.kind != "admin":
        raise Unauthorized("unknown, revoked or non-admin key", code="unknown_key")


def _int_arg(name: str, default: int | None, *, low: int = 0, high: int = 10_000) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return value


def event_json(event: StoredEvent) -> dict[str, Any]:
    """An event as the admin API shows it."""
    return {
        "id": event.id, "sourceId": event.source_id, "messageId": event.message_id,
        "type": event.type, "event": event.event, "userId": event.user_id,
        "anonymousId": event.anonymous_id, "origin": event.origin,
        "keyKind": event.key_kind, "verified": event.verified, "body": event.body,
    }


def key_json(key: KeyInfo) -> dict[str, Any]:
    """A key as the admin API shows it (never the key itself)."""
    return {"id": key.id, "kind": key.kind, "source": key.source_name, "name": key.name,
            "prefix": key.prefix, "createdAt": key.created_at, "revokedAt": key.revoked_at}


@admin_blueprint.get("/events")
def events() -> Response:
    """Newest events first; `limit` (≤1000) and `before` (an id) page through them."""
    conn = get_runtime().db.conn()
    limit = _int_arg("limit", 50, low=1, high=1000) or 50
    before = _int_arg("before", None, low=1, high=2**62)
    rows = recent_events(conn, limit=limit, before=before)
    return jsonify(events=[event_json(e) for e in rows], total=count_events(conn))


@admin_blueprint.get("/failed-events")
def failed_events() -> Response:
    """Events that were refused, with the reason, newest first."""
    limit = _int_arg("limit", 50, low=1, high=1000) or 50
    return jsonify(failed=recent_failed(get_runtime().db.conn(), limit=limit))


@admin_blueprint.get("/sources")
def sources() -> Response:
    """Every source."""
    rows = list_sources(get_runtime().db.conn())
    return jsonify(sources=[{"id": i, "name": n, "createdAt": c} for i, n, c in rows])


@admin_blueprint.get("/keys")
def keys() -> Response:
    """Every key (prefix only)."""
    return jsonify(keys=[key_json(k) for k in list_keys(get_runtime().db.conn())])


@admin_blueprint.get("/stats/daily")
def stats_daily() -> Response:
    """Events per day by origin and type, as the processor has counted them."""
    rows = daily_counts(get_runtime().db.conn())
    return jsonify(days=[{"day": d, "origin": o, "type": t, "count": c}
                         for d, o, t, c in rows])

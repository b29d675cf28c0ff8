"""Admin routes of the single customer view: profiles, their timelines, segments."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from ..errors import BadRequest, NotFound
from ..predict.views import scores_json
from ..profiles.views import export_json, lookup, search, timeline_json
from ..profiles.views import profile_json as _profile_json
from ..runtime import get_runtime
from ..store import profiles as store
from ..store import segments as segment_store
from ..store import timeline as timeline_store
from ..store.connection import Connection
from .routes import _int_arg, admin_blueprint


def profile_json(conn: Connection, profile_id: int) -> dict[str, Any] | None:
    """A profile as the API shows it: with its predictive scores and their inputs."""
    profile = _profile_json(conn, profile_id)
    if profile is not None:
        profile["scores"] = scores_json(conn, profile_id)
    return profile


def _profile_or_404(profile_id: int) -> int:
    conn = get_runtime().db.conn()
    if store.profile_row(conn, profile_id) is not None:
        return profile_id
    moved = store.merged_into(conn, profile_id)
    if moved is None or store.profile_row(conn, moved) is None:
        raise NotFound(f"no profile {profile_id}")
    return moved


@admin_blueprint.get("/profiles")
def profiles_search() -> Response:
    """Profiles seen most recently first; `q` searches identities by prefix."""
    conn = get_runtime().db.conn()
    limit = _int_arg("limit", 50, low=1, high=1000) or 50
    query = (request.args.get("q") or "").strip()
    capped = False
    if query:
        ids, capped = search(conn, query, limit)
    else:
        ids = store.recent_profiles(conn, limit, _int_arg("offset", 0, high=10**9) or 0)
    found = [p for p in (profile_json(conn, i) for i in ids[:limit]) if p is not None]
    if capped:  # more identities start with `q` than a search reads: narrow it
        return jsonify(profiles=found, total=store.count_profiles(conn), capped=True)
    return jsonify(profiles=found, total=store.count_profiles(conn))


@admin_blueprint.get("/profiles/lookup")
def profiles_lookup() -> Response:
    """The profile of any identity: `?id=VALUE` (userId, email, phone, anonymousId, …),
    optionally `&kind=email`."""
    value = request.args.get("id")
    if not value:
        raise BadRequest("id is required: ?id=<userId, email, phone or anonymousId>")
    kind = request.args.get("kind") or None
    try:
        pid = lookup(get_runtime().db.conn(), value, kind)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if pid is None:
        raise NotFound("no profile has that identity")
    return jsonify(profile_json(get_runtime().db.conn(), pid))


@admin_blueprint.get("/profiles/<int:profile_id>")
def profile_get(profile_id: int) -> Response:
    """One profile (a merged-away id answers with the profile it became)."""
    pid = _profile_or_404(profile_id)
    return jsonify(profile_json(get_runtime().db.conn(), pid))


@admin_blueprint.get("/profiles/<int:profile_id>/timeline")
def profile_timeline(profile_id: int) -> Response:
    """A profile's events across origins, newest first; `before` (ms) pages back."""
    pid = _profile_or_404(profile_id)
    limit = _int_arg("limit", 50, low=1, high=1000) or 50
    before = _int_arg("before", None, low=0, high=2**62)
    events = timeline_store.timeline(get_runtime().db.conn(), pid, limit=limit, before=before)
    return jsonify(profileId=pid, events=[timeline_json(e) for e in events])


@admin_blueprint.get("/profiles/<int:profile_id>/export")
def profile_export(profile_id: int) -> Response:
    """Everything held about the person (the data-access request)."""
    pid = _profile_or_404(profile_id)
    return jsonify(export_json(get_runtime().db.conn(), pid))


@admin_blueprint.get("/segments")
def segments_list() -> Response:
    """Every segment with its definition and member count."""
    conn = get_runtime().db.conn()
    counts = segment_store.segment_counts(conn)
    return jsonify(segments=[
        {"name": n, "version": v, "definition": d, "members": counts.get(n, 0)}
        for n, v, d in segment_store.segment_definitions(conn)
    ])


@admin_blueprint.get("/segments/<name>/members")
def segment_members(name: str) -> Response:
    """Members of a segment by profile id; `after` (a profile id) pages on."""
    conn = get_runtime().db.conn()
    if name not in {n for n, _, _ in segment_store.segment_definitions(conn)}:
        raise NotFound(f"no segment {name!r}")
    limit = _int_arg("limit", 100, low=1, high=1000) or 100
    after = _int_arg("after", 0, high=2**62) or 0
    rows = segment_store.segment_members(conn, name, limit=limit, after=after)
    return jsonify(segment=name,
                   members=[{"profileId": p, "enteredAt": t} for p, t in rows])

"""The dashboard's People pages: search by any identity, one person's page (identities,
traits, computed and predicted values, segments, journey runs with why, messages,
timeline), and export and forget behind a confirmation step. Registered on the
dashboard's blueprint (routes.py), behind its sign-in and CSRF checks.

Everything shown comes from the code the admin API and the CLI use: profiles/views.py
(profile, search, export), predict/views.py (scores), journeys/explain.py (why),
profiles/privacy.py (forget).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from flask import redirect, request
from werkzeug.wrappers import Response

from ..journeys.errors import WhyError
from ..journeys.explain import explain
from ..predict.views import scores_json
from ..profiles.privacy import forget
from ..profiles.views import export_json, profile_json, search, timeline_json
from ..runtime import get_runtime
from ..store import identities as identity_store
from ..store import journeys as journey_store
from ..store import outbox as outbox_store
from ..store import profiles as profile_store
from ..store import timeline as timeline_store
from ..store.connection import Connection
from .paging import int_arg
from .routes import _page, _problem, _when, dashboard_blueprint

PAGE = 50
RUNS = 50


def current_profile(conn: Connection, profile_id: int) -> int | None:
    """The profile id as it is now (a merged-away id gives the profile it became)."""
    if profile_store.profile_row(conn, profile_id) is not None:
        return profile_id
    moved = profile_store.merged_into(conn, profile_id)
    if moved is not None and profile_store.profile_row(conn, moved) is not None:
        return moved
    return None


def _summary(conn: Connection, profile_id: int) -> dict[str, Any] | None:
    profile = profile_json(conn, profile_id)
    if profile is None:
        return None
    c = profile["computed"]
    return {"id": profile_id, "identities": profile["identities"],
            "lastSeen": c.get("lastSeen"), "orders": c.get("orders"),
            "revenue": c.get("revenue")}


@dashboard_blueprint.get("/people")
def people() -> Response:
    """Search people by email, userId, phone or anonymousId; without a search, the people
    seen most recently."""
    conn = get_runtime().db.conn()
    query = (request.args.get("q") or "").strip()[:200]
    offset = int_arg("offset", 0, high=10**7)
    capped = False
    if query:
        ids, capped = search(conn, query, PAGE)
        more = False
    else:
        ids = profile_store.recent_profiles(conn, PAGE + 1, offset)
        more = len(ids) > PAGE
        ids = ids[:PAGE]
    found = [p for p in (_summary(conn, i) for i in ids) if p is not None]
    return _page("people.html", since=None, page="people", query=query, people=found,
                 offset=offset, more=more, step=PAGE, when=_when, capped=capped,
                 matches=identity_store.SEARCH_MATCHES,
                 message=request.args.get("message"),
                 data={"query": query, "profiles": [p["id"] for p in found]})


def _why(conn: Connection, profile_id: int, runs: list[dict[str, Any]],
         now_ms: int) -> list[dict[str, Any]]:
    """Per journey the person ran through: the runs as `kanal journeys why` explains them
    (or the plain rows when the journey is no longer loaded)."""
    out = []
    for journey in dict.fromkeys(r["journey"] for r in runs):
        try:
            report = explain(conn, f"profile:{profile_id}", journey, now_ms=now_ms)
        except WhyError as exc:
            out.append({"journey": journey, "summary": str(exc), "runs": [], "raw": [
                r for r in runs if r["journey"] == journey]})
            continue
        out.append({"journey": journey, "summary": report["summary"],
                    "runs": report["runs"], "raw": []})
    return out


@dashboard_blueprint.get("/people/<int:profile_id>")
def person(profile_id: int) -> Response:
    """One person: identities, traits, computed and predicted values, segments, journey
    runs with why, messages and their states, the timeline across origins."""
    runtime = get_runtime()
    conn = runtime.db.conn()
    pid = current_profile(conn, profile_id)
    if pid is None:
        return _problem(404, "No such person", f"There is no profile {profile_id}.")
    if pid != profile_id:
        return redirect(f"/dashboard/people/{pid}", code=303)
    profile = profile_json(conn, pid)
    assert profile is not None
    profile["scores"] = scores_json(conn, pid)
    before = int_arg("before", None, high=2**62)
    events = timeline_store.timeline(conn, pid, limit=PAGE + 1, before=before,
                                     before_id=int_arg("id", None, high=2**62))
    older = ((events[PAGE - 1].timestamp, events[PAGE - 1].id) if len(events) > PAGE
             else None)
    runs = journey_store.runs(conn, profile_id=pid, limit=RUNS)
    messages = outbox_store.listing(conn, profile_id=pid, limit=PAGE)
    return _page(
        "person.html", since=None, page="people", profile=profile, when=_when,
        timeline=[timeline_json(e) for e in events[:PAGE]], older=older, before=before,
        journeys=_why(conn, pid, runs, int(runtime.clock.now() * 1000)),
        messages=[m.as_json() for m in messages], as_json=_as_json,
        data={"profileId": pid, "segments": [s["name"] for s in profile["segments"]],
              "runs": [r["id"] for r in runs], "messages": [m.id for m in messages]})


def _as_json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                           default=str)


def _confirm(profile_id: int, action: str, status: int = 200,
             message: str | None = None) -> Response:
    conn = get_runtime().db.conn()
    summary = _summary(conn, profile_id)
    if summary is None:
        return _problem(404, "No such person", f"There is no profile {profile_id}.")
    return _page("person_confirm.html", status, since=None, page="people", action=action,
                 person=summary, message=message)


@dashboard_blueprint.get("/people/<int:profile_id>/export")
def person_export_form(profile_id: int) -> Response:
    """Ask before downloading everything held about a person."""
    return _confirm(profile_id, "export")


@dashboard_blueprint.post("/people/<int:profile_id>/export")
def person_export(profile_id: int) -> Response:
    """Everything held about the person as a JSON download (the data-access request)."""
    if request.form.get("confirm") != "yes":
        return _confirm(profile_id, "export", 400, "Tick the box to confirm.")
    data = export_json(get_runtime().db.conn(), profile_id)
    if data is None:
        return _problem(404, "No such person", f"There is no profile {profile_id}.")
    response = Response(json.dumps(data, ensure_ascii=False, indent=2, default=str),
                        mimetype="application/json")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="kanal-profile-{profile_id}.json"')
    return response


@dashboard_blueprint.get("/people/<int:profile_id>/forget")
def person_forget_form(profile_id: int) -> Response:
    """Ask before forgetting a person."""
    return _confirm(profile_id, "forget")


@dashboard_blueprint.post("/people/<int:profile_id>/forget")
def person_forget(profile_id: int) -> Response:
    """Delete the person's events and profile and suppress their identities (as
    `kanal forget`)."""
    if request.form.get("confirm") != "yes":
        return _confirm(profile_id, "forget", 400, "Tick the box to confirm.")
    runtime = get_runtime()
    try:
        done = forget(runtime.db.conn(), "", int(runtime.clock.now() * 1000),
                      profile_id=profile_id)
    except ValueError as exc:
        return _problem(404, "No such person", str(exc))
    return redirect("/dashboard/people?message=" + quote(
        f"Forgot profile {done.profile_id}: {done.events_deleted} events deleted, "
        f"{len(done.identities)} identities suppressed."), code=303)

"""The dashboard's Events pages: the live log newest first, filtered by origin, type,
event name, source and person (optionally refreshing itself), and failed events with the
reason each was refused. Registered on the dashboard's blueprint (routes.py)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import request
from werkzeug.wrappers import Response

from ..profiles.views import lookup
from ..runtime import get_runtime
from ..store import events as store
from ..store import timeline as timeline_store
from ..store.connection import Connection
from ..store.events import StoredEvent
from ..store.keys import list_sources
from ..store.scan import Page
from .paging import int_arg, text_arg
from .routes import _page, _when, dashboard_blueprint

PAGE = 50
WINDOW = 5000
ORIGINS = ("web", "app", "server", "email", "sms", "push", "store")
TYPES = ("track", "identify", "page", "screen", "group", "alias")


def _row(e: StoredEvent, sources: dict[int, str], people: dict[int, int]) -> dict[str, Any]:
    return {"id": e.id, "timestamp": e.timestamp, "receivedAt": e.received_at,
            "origin": e.origin, "type": e.type, "event": e.event,
            "source": sources.get(e.source_id, str(e.source_id)), "keyKind": e.key_kind,
            "verified": e.verified, "userId": e.user_id, "anonymousId": e.anonymous_id,
            "profileId": people.get(e.id)}


def _person_page(conn: Connection, pid: int, match: dict[str, Any]
                 ) -> tuple[list[StoredEvent], Page, str | None]:
    """A person's events (their timeline, newest first), filtered within a window."""
    at, at_id = int_arg("before", None, high=2**62), int_arg("id", None, high=2**62)
    seen = timeline_store.timeline(conn, pid, limit=WINDOW, before=at, before_id=at_id)
    kept = [e for e in seen if all(getattr(e, k) == v for k, v in match.items()
                                   if v is not None)]
    if len(kept) > PAGE:
        last = kept[PAGE - 1]
        return kept[:PAGE], Page([], last.timestamp, False), f"&id={last.id}"
    if len(seen) == WINDOW:
        return kept, Page([], seen[-1].timestamp, True), f"&id={seen[-1].id}"
    return kept, Page([], None, False), None


@dashboard_blueprint.get("/events")
def events() -> Response:
    """The event log, newest first, with filters; `live=1` refreshes every 5 seconds."""
    conn = get_runtime().db.conn()
    sources = {sid: name for sid, name, _ in list_sources(conn)}
    names = {name: sid for sid, name in sources.items()}
    filters = {k: text_arg(k) for k in ("origin", "type", "event", "source", "person")}
    problem = None
    source_id = None
    if filters["source"] is not None:
        source_id = names.get(filters["source"])
        if source_id is None:
            problem = f"There is no source called {filters['source']!r}."
    pid = None
    if filters["person"] is not None:
        pid = lookup(conn, filters["person"])
        if pid is None:
            problem = f"Nobody has the identity {filters['person']!r}."
    rows: list[StoredEvent] = []
    found = Page([], None, False)
    extra = None
    if problem is None and pid is not None:
        rows, found, extra = _person_page(conn, pid, {
            "origin": filters["origin"], "type": filters["type"], "event": filters["event"],
            "source_id": source_id})
    elif problem is None:
        rows, found = store.page(conn, origin=filters["origin"], type_=filters["type"],
                                 event=filters["event"], source_id=source_id,
                                 before=int_arg("before", None, high=2**62), limit=PAGE,
                                 window=WINDOW)
    people = timeline_store.event_profiles(conn, [e.id for e in rows])
    query = {k: v for k, v in filters.items() if v is not None}
    live = request.args.get("live") == "1" and not request.args.get("before")
    return _page(
        "events.html", 404 if problem else 200, since=None, page="events",
        rows=[_row(e, sources, people) for e in rows], filters=filters, found=found,
        origins=ORIGINS, types=TYPES, sources=sorted(names), problem=problem, when=_when,
        live=live, first_link="/dashboard/events" + ("?" + urlencode(query) if query else ""),
        live_link="/dashboard/events?" + urlencode({**query, "live": "1"}),
        next_link=None if found.before is None else "/dashboard/events?" + urlencode(
            {**query, "before": found.before}) + (extra or ""),
        data={"events": [e.id for e in rows], "before": found.before})


@dashboard_blueprint.get("/events/failed")
def failed_events() -> Response:
    """Events refused at ingest, newest first, with the reason."""
    conn = get_runtime().db.conn()
    sources = {sid: name for sid, name, _ in list_sources(conn)}
    rows, found = store.failed_page(conn, before=int_arg("before", None, high=2**62),
                                    limit=PAGE)
    for row in rows:
        row["source"] = sources.get(row["source_id"], "-") if row["source_id"] else "-"
        body = str(row["body"])
        row["body"] = body if len(body) <= 600 else body[:600] + "…"
    return _page("failed_events.html", since=None, page="events", rows=rows, found=found,
                 when=_when, data={"failed": [r["id"] for r in rows]})

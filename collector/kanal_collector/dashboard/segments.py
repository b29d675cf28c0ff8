"""The dashboard's Segments pages: each segment's definition and size, its member count
over time (noted daily by the segment sweeper, store.segments.record_day) and its
members, paged by profile id. Registered on the dashboard's blueprint (routes.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from werkzeug.wrappers import Response

from ..profiles.views import profile_json
from ..runtime import get_runtime
from ..store import segments as store
from . import charts
from .paging import int_arg
from .routes import _page, _problem, _when, dashboard_blueprint

PAGE = 50
DAYS = 90


def _day(day: int) -> str:
    return datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d")


@dashboard_blueprint.get("/segments")
def segments() -> Response:
    """Every segment: definition, version, the latest noted member count."""
    conn = get_runtime().db.conn()
    latest = store.latest_day_counts(conn)
    rows = [{"name": n, "version": v, "definition": json.dumps(d, ensure_ascii=False),
             "members": latest.get(n, (None, None))[1],
             "day": _day(latest[n][0]) if n in latest else None}
            for n, v, d in store.segment_definitions(conn)]
    return _page("segments.html", since=None, page="segments", segments=rows,
                 data={"segments": [{"name": r["name"], "members": r["members"]}
                                    for r in rows]})


@dashboard_blueprint.get("/segments/<name>")
def segment(name: str) -> Response:
    """One segment: definition, members now, members per day, members paged."""
    runtime = get_runtime()
    conn = runtime.db.conn()
    found = [(v, d) for n, v, d in store.segment_definitions(conn) if n == name]
    if not found:
        return _problem(404, "No such segment", f"There is no segment called {name!r}.")
    version, definition = found[0]
    today = int(runtime.clock.now() * 1000) // store.DAY_MS
    history = store.day_counts(conn, name, today - DAYS + 1)
    after = int_arg("after", 0, high=2**62)
    rows = store.segment_members(conn, name, limit=PAGE + 1, after=after)
    members = []
    for pid, entered in rows[:PAGE]:
        profile = profile_json(conn, pid)
        members.append({"id": pid, "enteredAt": entered,
                        "identities": profile["identities"] if profile else []})
    chart = charts.stacked_bars(f"Members of {name} per day (UTC)",
                                [(_day(d), {"members": n}) for d, n in history])
    return _page(
        "segment.html", since=None, page="segments", name=name, version=version,
        definition=json.dumps(definition, ensure_ascii=False, indent=2),
        members_now=store.count_members(conn, name), members=members, when=_when,
        after=after, next_after=rows[PAGE - 1][0] if len(rows) > PAGE else None,
        chart=chart,
        data={"segment": name, "history": [{"day": _day(d), "members": n}
                                            for d, n in history],
              "members": [m["id"] for m in members]})

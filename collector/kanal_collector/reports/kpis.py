"""The KPI overview: events, active people, conversions and revenue per UTC day.

The overview counts whole UTC days: the window is widened to the days it touches
(the processor keeps event counts per day, so nothing finer exists for them), and
`since` / `until` in the answer are the widened bounds. Every day of the window is in
`days`, with zeros when nothing happened.

    events           the shop's events per origin that day (what sites, apps and
                     backends sent)
    own_events       Kanal's own events per origin that day (deliveries, opens and
                     clicks, segment entries and exits, …), shown apart; counters
                     from before wave 2 hold them under `events`
    active_profiles  people with an event of their own that day (Kanal's own events —
                     sends, deliveries, opens — don't make a person active)
    conversions      goal events (default "Order Completed") on people's timelines;
                     revenue is their order value (revenue, else total, else value,
                     else the sum of the products)

People and conversions come from daily aggregates the processor keeps beside the
timelines (store/schema.py _m009_daily_aggregates), so the overview reads a few rows per
day of the window, however long the log.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ..store import reports as store
from ..store.connection import Connection
from ..store.profiles import count_profiles
from .funnels import money

DAY_MS = store.DAY_MS


def day_name(day: int) -> str:
    """Day number (ms // 86 400 000) → "YYYY-MM-DD" (UTC)."""
    return datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d")


def overview(conn: Connection, *, since_ms: int, until_ms: int,
             goal_events: Sequence[str] = ("Order Completed",)) -> dict[str, Any]:
    """Events by origin, active profiles, conversions and revenue for each UTC day the
    window [since_ms, until_ms) touches, and their totals.

    ValueError (naming the argument) for bounds that are not epoch ms, `until_ms`
    before `since_ms`, or goal events that are not a list of names.
    """
    for value, name in ((since_ms, "since_ms"), (until_ms, "until_ms")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be epoch milliseconds (an int ≥ 0), not {value!r}")
    if until_ms < since_ms:
        raise ValueError(f"until_ms ({until_ms}) must not be before since_ms ({since_ms})")
    if isinstance(goal_events, str) or not all(isinstance(g, str) and g for g in goal_events):
        raise ValueError(f"goal_events must be a list of event names, not {goal_events!r}")
    first = since_ms // DAY_MS
    end = -(-until_ms // DAY_MS)  # the day after the last one touched
    start_ms, end_ms = first * DAY_MS, end * DAY_MS
    days = list(range(first, end)) if until_ms > since_ms else []

    by_origin: dict[str, dict[str, int]] = defaultdict(dict)
    own_by_origin: dict[str, dict[str, int]] = defaultdict(dict)
    origins: set[str] = set()
    own_origins: set[str] = set()
    if days:
        for day_text, origin, own, n in store.event_counts(conn, day_name(days[0]),
                                                           day_name(days[-1])):
            (own_by_origin if own else by_origin)[day_text][origin] = n
            (own_origins if own else origins).add(origin)
    active = store.active_profiles_by_day(conn, first, end - 1) if days else {}
    conversions: dict[int, int] = {}
    revenue: dict[int, float] = {}
    goals = store.goal_totals(conn, list(goal_events), first, end - 1) if days else []
    for goal_day, count, amount in goals:
        conversions[goal_day] = count
        revenue[goal_day] = amount

    rows: list[dict[str, Any]] = []
    total_events = total_own = 0
    for day in days:
        text = day_name(day)
        total_events += sum(by_origin.get(text, {}).values())
        total_own += sum(own_by_origin.get(text, {}).values())
        rows.append({
            "day": text,
            "events": {o: by_origin.get(text, {}).get(o, 0) for o in sorted(origins)},
            "own_events": {o: own_by_origin.get(text, {}).get(o, 0)
                           for o in sorted(own_origins)},
            "active_profiles": active.get(day, 0),
            "conversions": conversions.get(day, 0),
            "revenue": money(revenue.get(day, 0.0)),
        })
    return {
        "since": start_ms, "until": end_ms, "days": rows,
        "totals": {
            "events": total_events,
            "own_events": total_own,
            "active_profiles": store.active_profiles(conn, first, end - 1) if days else 0,
            "profiles": count_profiles(conn),
            "conversions": sum(conversions.values()),
            "revenue": money(sum(revenue.values())),
        },
    }

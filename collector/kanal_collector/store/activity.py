"""The KPI overview's daily aggregates: active_days, active_spans and track_daily.

They hold what the overview used to count from the timelines: people's own events on a
timeline, by UTC day. The profiles step adds to them in the processor's transaction (so
a batch counts exactly once), a merge moves a person's days to the survivor, deleting
events takes away what they added, and a rebuild clears them with the timelines and
replays.

active_spans(day, prev_day, people) counts the people active on `day` whose previous
active day was `prev_day` (NO_DAY: none). People active that day = the sum over
prev_day; distinct people over days [a, b] = the sum over day in [a, b] with
prev_day < a (each person counted on their first day in the window). So the overview
reads at most (days of the window × days of history) rows, however many people.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from ..money import order_value
from .chunks import chunks
from .connection import Connection

DAY_MS = 86_400_000


_OWN = "kanal"
"""key_kind of Kanal's own events (profiles.step.KANAL_KEY_KIND): never a person's doing."""


NO_DAY = -(2 ** 40)
"""active_spans.prev_day of a person's first active day."""


def add_daily_activity(conn: Connection, active: Iterable[tuple[int, int]],
                       tracks: Mapping[tuple[int, str], tuple[int, float]]) -> None:
    """Record (day, profile_id) pairs of people's own events, and add (count, revenue)
    of people's track events to their (day, event name).

    What the batch's people already have is read in three statements per 500 people
    (their days within the batch's days, and the nearest one on either side), not two
    per pair: PostgreSQL pays a round trip per statement.
    """
    pairs = sorted(set(active))
    if pairs:
        first, last = pairs[0][0], pairs[-1][0]
        known = _known_days(conn, sorted({pid for _, pid in pairs}), first, last)
        spans: Counter[tuple[int, int]] = Counter()
        new: list[tuple[int, int]] = []
        for day, pid in pairs:  # in day order, as one insert after another would see them
            before, days, after = known.get(pid, (NO_DAY, [], None))
            i = bisect_left(days, day)
            if i < len(days) and days[i] == day:
                continue
            prev = days[i - 1] if i else before
            nxt = days[i] if i < len(days) else after
            days.insert(i, day)
            known[pid] = (before, days, after)
            new.append((day, pid))
            _link(spans, day, prev, nxt)
        conn.executemany("INSERT INTO active_days (day, profile_id) VALUES (?, ?)", new)
        _save_spans(conn, spans)
    conn.executemany(
        "INSERT INTO track_daily (day, event, count, revenue) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (day, event) DO UPDATE SET count = track_daily.count + excluded.count, "
        "revenue = track_daily.revenue + excluded.revenue",
        [(day, name, n, revenue) for (day, name), (n, revenue) in sorted(tracks.items())])


def _known_days(conn: Connection, pids: Sequence[int], first: int, last: int
                ) -> dict[int, tuple[int, list[int], int | None]]:
    """{pid: (last active day before `first` or NO_DAY, active days in [first, last],
    first active day after `last` or None)} of these people."""
    known: dict[int, tuple[int, list[int], int | None]] = {}
    for chunk in chunks(pids):
        marks = ",".join("?" * len(chunk))
        inside: dict[int, list[int]] = {}
        for pid, day in conn.execute(
                f"SELECT profile_id, day FROM active_days WHERE profile_id IN ({marks}) "
                "AND day >= ? AND day <= ? ORDER BY profile_id, day", (*chunk, first, last)):
            inside.setdefault(int(pid), []).append(int(day))
        # One index seek per person and side (profile_id, day), not a scan of history.
        people = ",".join(["(?)"] * len(chunk))
        for pid, prev, nxt in conn.execute(
                "SELECT v.column1, "
                "(SELECT max(a.day) FROM active_days a WHERE a.profile_id = v.column1 "
                "AND a.day < ?), "
                "(SELECT min(a.day) FROM active_days a WHERE a.profile_id = v.column1 "
                f"AND a.day > ?) FROM (VALUES {people}) AS v", (first, last, *chunk)):
            known[int(pid)] = (NO_DAY if prev is None else int(prev),
                               inside.get(int(pid), []), None if nxt is None else int(nxt))
    return known


def _neighbours(conn: Connection, day: int, pid: int) -> tuple[int, int | None]:
    """(the person's active day before `day` or NO_DAY, the one after or None)."""
    prev, nxt = conn.execute(
        "SELECT (SELECT max(day) FROM active_days WHERE profile_id = ? AND day < ?), "
        "(SELECT min(day) FROM active_days WHERE profile_id = ? AND day > ?)",
        (pid, day, pid, day)).fetchone()
    return (NO_DAY if prev is None else int(prev)), (None if nxt is None else int(nxt))


def _add_active_day(conn: Connection, day: int, pid: int,
                    spans: Counter[tuple[int, int]]) -> None:
    if not conn.execute("INSERT INTO active_days (day, profile_id) VALUES (?, ?) "
                        "ON CONFLICT DO NOTHING", (day, pid)).rowcount:
        return
    _link(spans, day, *_neighbours(conn, day, pid))


def _link(spans: Counter[tuple[int, int]], day: int, prev: int, nxt: int | None) -> None:
    """Count a new active day between a person's days `prev` and `nxt`."""
    spans[(day, prev)] += 1
    if nxt is not None:  # the next day's previous one is now `day`
        spans[(nxt, prev)] -= 1
        spans[(nxt, day)] += 1


def _remove_active_day(conn: Connection, day: int, pid: int,
                       spans: Counter[tuple[int, int]]) -> None:
    if not conn.execute("DELETE FROM active_days WHERE day = ? AND profile_id = ?",
                        (day, pid)).rowcount:
        return
    prev, nxt = _neighbours(conn, day, pid)
    spans[(day, prev)] -= 1
    if nxt is not None:
        spans[(nxt, day)] -= 1
        spans[(nxt, prev)] += 1


def _save_spans(conn: Connection, spans: Counter[tuple[int, int]]) -> None:
    changed = sorted((day, prev, n) for (day, prev), n in spans.items() if n)
    conn.executemany(
        "INSERT INTO active_spans (day, prev_day, people) VALUES (?, ?, ?) "
        "ON CONFLICT (day, prev_day) DO UPDATE SET "
        "people = active_spans.people + excluded.people",
        changed)
    conn.executemany("DELETE FROM active_spans WHERE day = ? AND prev_day = ? AND people = 0",
                     [(day, prev) for day, prev, n in changed if n < 0])


def move_active_days(conn: Connection, into: int | None, other: int) -> None:
    """Give `other`'s active days to `into` (a merge), or drop them (into None)."""
    days = [int(r[0]) for r in conn.execute(
        "SELECT day FROM active_days WHERE profile_id = ? ORDER BY day", (other,))]
    if not days:
        return
    spans: Counter[tuple[int, int]] = Counter()
    for day in reversed(days):  # the last first: each leaves without a next day
        _remove_active_day(conn, day, other, spans)
    if into is not None:
        for day in days:
            _add_active_day(conn, day, into, spans)
    _save_spans(conn, spans)


def retract_track_events(conn: Connection,
                          event_ids: Sequence[int]) -> set[tuple[int, int]]:
    """Take events about to be deleted out of track_daily; return the (profile_id, day)
    pairs of active_days they may have made."""
    marks = ",".join("?" * len(event_ids))
    days = {(int(pid), int(ts) // DAY_MS) for pid, ts in conn.execute(
        "SELECT pe.profile_id, pe.timestamp FROM profile_events pe "
        f"JOIN events e ON e.id = pe.event_id WHERE pe.event_id IN ({marks}) "
        "AND e.key_kind != ?", (*event_ids, _OWN))}
    taken: Counter[tuple[int, str]] = Counter()
    revenue: dict[tuple[int, str], float] = {}
    for ts, name, properties in conn.execute(
            f"SELECT e.timestamp, e.event, {conn.dialect.json_value('e.body', 'properties')} "
            "FROM events e "
            f"WHERE e.id IN ({marks}) AND e.type = 'track' AND e.key_kind != ? "
            "AND e.event IS NOT NULL "
            "AND EXISTS (SELECT 1 FROM profile_events pe WHERE pe.event_id = e.id) "
            # A copy of an order that isn't counted never joined the figures.
            "AND NOT EXISTS (SELECT 1 FROM order_copies oc WHERE oc.event_id = e.id "
            "AND oc.counted = 0)",
            (*event_ids, _OWN)):
        key = (int(ts) // DAY_MS, str(name))
        taken[key] += 1
        revenue[key] = revenue.get(key, 0.0) + order_value(properties)
    for (day, name), n in taken.items():
        conn.execute("UPDATE track_daily SET count = count - ?, revenue = revenue - ? "
                     "WHERE day = ? AND event = ?", (n, revenue[(day, name)], day, name))
        conn.execute("DELETE FROM track_daily WHERE day = ? AND event = ? AND count <= 0",
                     (day, name))
    return days


def recheck_active_days(conn: Connection, days: Iterable[tuple[int, int]]) -> None:
    """Drop the active days whose person has no own event left on that day."""
    spans: Counter[tuple[int, int]] = Counter()
    for pid, day in sorted(days):
        if conn.execute(
                "SELECT 1 FROM profile_events pe JOIN events e ON e.id = pe.event_id "
                "WHERE pe.profile_id = ? AND pe.timestamp >= ? AND pe.timestamp < ? "
                "AND e.key_kind != ? LIMIT 1",
                (pid, day * DAY_MS, (day + 1) * DAY_MS, _OWN)).fetchone() is None:
            _remove_active_day(conn, day, pid, spans)
    _save_spans(conn, spans)

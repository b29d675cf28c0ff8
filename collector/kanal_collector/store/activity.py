"""The KPI overview's daily aggregates: people's active days, active_spans and
track_daily.

They hold what the overview used to count from the timelines: people's own events on a
timeline, by UTC day. The profiles step adds to them in the processor's transaction (so
a batch counts exactly once), a merge moves a person's days to the survivor, deleting
events takes away what they added, and a rebuild clears them with the timelines and
replays.

A person's active days are a column of their profile row, profiles.active_days
(`encode_days`): the processor reads and writes that row anyway. Migration 34 moved them
there from a table of their own (#18).

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


def encode_days(days: Sequence[int]) -> str | None:
    """A person's active days (ascending UTC day numbers) as profiles.active_days keeps
    them: the first day, then each day's distance from the one before ("20419,1,6");
    None for no days."""
    if not days:
        return None
    out = [str(days[0])]
    out += [str(b - a) for a, b in zip(days, days[1:], strict=False)]
    return ",".join(out)


def decode_days(text: str | None) -> list[int]:
    """The ascending day numbers of profiles.active_days (`encode_days`)."""
    if not text:
        return []
    days: list[int] = []
    day = 0
    for i, part in enumerate(text.split(",")):
        day = int(part) if i == 0 else day + int(part)
        days.append(day)
    return days


def active_days_of(conn: Connection, pids: Iterable[int]) -> dict[int, list[int]]:
    """{pid: active days} of these people (those with a profile; no days: [])."""
    out: dict[int, list[int]] = {}
    for chunk in chunks(sorted(set(pids))):
        marks = ",".join("?" * len(chunk))
        for pid, text in conn.execute(
                f"SELECT id, active_days FROM profiles WHERE id IN ({marks})", chunk):
            out[int(pid)] = decode_days(text)
    return out


def add_active_days(conn: Connection,
                    active: Iterable[tuple[int, int]]) -> dict[int, str | None]:
    """Count (day, profile_id) pairs of people's own events into active_spans; return
    the new profiles.active_days of each person who has a new day, for the caller to
    write with the rest of the profile row (the processor writes each row once a batch).

    A person's days are read with their profile row, a page the batch writes anyway;
    they had a table of their own, whose index by person cost a page per person and
    batch (#18). People without a profile row are passed over.
    """
    pairs = sorted(set(active))
    if not pairs:
        return {}
    known = active_days_of(conn, (pid for _, pid in pairs))
    spans: Counter[tuple[int, int]] = Counter()
    changed: set[int] = set()
    for day, pid in pairs:  # in day order, as one insert after another would see them
        days = known.get(pid)
        if days is None:
            continue
        i = bisect_left(days, day)
        if i < len(days) and days[i] == day:
            continue
        _link(spans, day, days[i - 1] if i else NO_DAY, days[i] if i < len(days) else None)
        days.insert(i, day)
        changed.add(pid)
    _save_spans(conn, spans)
    return {pid: encode_days(known[pid]) for pid in sorted(changed)}


def write_active_days(conn: Connection, days: Mapping[int, str | None]) -> None:
    """Store people's profiles.active_days (`encode_days`)."""
    conn.executemany("UPDATE profiles SET active_days = ? WHERE id = ?",
                     [(text, pid) for pid, text in sorted(days.items())])


def add_track_counts(conn: Connection,
                     tracks: Mapping[tuple[int, str], tuple[int, float]]) -> None:
    """Add (count, revenue) of people's track events to track_daily's (day, event)."""
    conn.executemany(
        "INSERT INTO track_daily (day, event, count, revenue) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (day, event) DO UPDATE SET count = track_daily.count + excluded.count, "
        "revenue = track_daily.revenue + excluded.revenue",
        [(day, name, n, revenue) for (day, name), (n, revenue) in sorted(tracks.items())])


def _link(spans: Counter[tuple[int, int]], day: int, prev: int, nxt: int | None) -> None:
    """Count a new active day between a person's days `prev` and `nxt`."""
    spans[(day, prev)] += 1
    if nxt is not None:  # the next day's previous one is now `day`
        spans[(nxt, prev)] -= 1
        spans[(nxt, day)] += 1


def _chain(days: Sequence[int]) -> Counter[tuple[int, int]]:
    """What one person with these active days adds to active_spans."""
    return Counter(zip(days, [NO_DAY, *days[:-1]], strict=True)) if days else Counter()


def _respan(spans: Counter[tuple[int, int]], before: Sequence[int],
            after: Sequence[int]) -> None:
    """Change a person's share of active_spans from days `before` to days `after`."""
    spans.subtract(_chain(before))
    spans.update(_chain(after))


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
    known = active_days_of(conn, [other] if into is None else [other, into])
    days = known.get(other, [])
    if not days:
        return
    spans: Counter[tuple[int, int]] = Counter()
    _respan(spans, days, [])
    write: dict[int, str | None] = {other: None}
    if into is not None and into in known:
        mine = known[into]
        joined = sorted(set(mine) | set(days))
        _respan(spans, mine, joined)
        write[into] = encode_days(joined)
    _save_spans(conn, spans)
    write_active_days(conn, write)


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
    gone: dict[int, set[int]] = {}
    for pid, day in sorted(days):
        if conn.execute(
                "SELECT 1 FROM profile_events pe JOIN events e ON e.id = pe.event_id "
                "WHERE pe.profile_id = ? AND pe.timestamp >= ? AND pe.timestamp < ? "
                "AND e.key_kind != ? LIMIT 1",
                (pid, day * DAY_MS, (day + 1) * DAY_MS, _OWN)).fetchone() is None:
            gone.setdefault(pid, set()).add(day)
    if not gone:
        return
    spans: Counter[tuple[int, int]] = Counter()
    write: dict[int, str | None] = {}
    for pid, before in active_days_of(conn, gone).items():
        after = [d for d in before if d not in gone[pid]]
        if len(after) != len(before):
            _respan(spans, before, after)
            write[pid] = encode_days(after)
    _save_spans(conn, spans)
    write_active_days(conn, write)

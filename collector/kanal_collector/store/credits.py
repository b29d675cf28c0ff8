"""Attribution kept as the processor goes: the tables behind reports/credits.py.

    attribution_keys         a touchpoint's (channel, campaign, journey), by a hash id
    profile_events.key_id    a touchpoint's key, on its row of the person's timeline
                             (NULL: the event is no touchpoint)
    attribution_conversions  every conversion: profile, timestamp, revenue, how many
                             touchpoints it was credited to (`touched`; 0: unattributed)
                             and how many of those its profile's previous conversion
                             was not (`fresh`)
    attribution_days         per UTC day: conversions, revenue, how many (and how much)
                             unattributed, fresh touchpoints (a row goes with its last
                             conversion)
    attribution_credits      one conversion's credit per model and key (weights sum to 1)
    attribution_daily        the credits summed per UTC day, model and key; `n` counts
                             the conversions in a row, which is deleted when it reaches 0
                             (so what every conversion left is exactly nothing)
    attribution_hourly       the same per hour (hours since the epoch): a window's parts
                             of days (today's hours so far) are read from it, so what a
                             report reads of the log is under an hour at each end

Written by the processor's attribution step (and emptied by `kanal forget` for a
person, by `profiles rebuild` for everyone); read by the attribution report. Models are
stored by their position in reports/attribution_model.MODELS.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson

from .attribution import CAMPAIGN, REFERRER
from .chunks import chunks
from .connection import Connection

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
TABLES = ("attribution_conversions", "attribution_credits", "attribution_daily",
          "attribution_hourly", "attribution_days")
"""What a person's and everyone's attribution is, besides the touchpoints' keys on the
timelines (the keys' names are kept: they name nobody)."""

Touch = tuple[str, str, str]
Credit = tuple[int, int, float]
"""(model, key id, weight) of one conversion."""
Conversion = tuple[int, int, int, float]
"""(event id, profile id, timestamp, revenue)."""


def key_id(touch: Touch) -> int:
    """A touch key's id: 62 bits of a hash of its three parts (the same on every node
    and in every transaction, so no id is ever handed out and lost)."""
    digest = hashlib.blake2b("\x1f".join(touch).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 2


def save_keys(conn: Connection, touches: Iterable[Touch]) -> dict[Touch, int]:
    """Make sure these keys are stored; {touch: id}."""
    ids = {t: key_id(t) for t in set(touches)}
    if ids:
        conn.executemany(
            "INSERT INTO attribution_keys (id, channel, campaign, journey) VALUES (?,?,?,?) "
            "ON CONFLICT (id) DO NOTHING", [(i, *t) for t, i in sorted(ids.items())])
    return ids


def keys(conn: Connection, ids: Iterable[int]) -> dict[int, Touch]:
    """{id: (channel, campaign, journey)}."""
    out: dict[int, Touch] = {}
    for chunk in chunks(sorted(set(ids)), 500):
        marks = ",".join("?" * len(chunk))
        for i, channel, campaign, journey in conn.execute(
                "SELECT id, channel, campaign, journey FROM attribution_keys "
                f"WHERE id IN ({marks})", chunk):
            out[int(i)] = (str(channel), str(campaign), str(journey))
    return out


# -- touchpoints and conversions --------------------------------------------------------------

def add_touchpoints(conn: Connection, rows: Sequence[tuple[int, int, int, int]]) -> None:
    """Store (profile, timestamp, event, key id) touchpoints: the key goes on the event's
    timeline row (which the profiles step wrote in the same batch: its page is at hand)."""
    conn.executemany(
        "INSERT INTO profile_events (profile_id, timestamp, event_id, key_id) "
        "VALUES (?,?,?,?) ON CONFLICT (profile_id, timestamp, event_id) "
        "DO UPDATE SET key_id = excluded.key_id", sorted(rows))


def delete_touchpoints(conn: Connection, rows: Iterable[tuple[int, int, int]]) -> None:
    """(profile, timestamp, event) are no touchpoints any more (their timeline rows
    stay)."""
    conn.executemany(
        "UPDATE profile_events SET key_id = NULL WHERE profile_id = ? AND timestamp = ? "
        "AND event_id = ?", list(rows))


def touchpoints_of(conn: Connection, profile_ids: Sequence[int], since_ms: int,
                   until_ms: int) -> dict[int, list[tuple[int, int, int]]]:
    """{profile: [(timestamp, event id, key id)…]} with timestamps in [since, until],
    in (timestamp, event id) order."""
    out: dict[int, list[tuple[int, int, int]]] = {}
    for chunk in chunks(sorted(set(profile_ids)), 500):
        marks = ",".join("?" * len(chunk))
        for pid, ts, eid, kid in conn.execute(
                "SELECT profile_id, timestamp, event_id, key_id FROM profile_events "
                f"WHERE profile_id IN ({marks}) AND timestamp >= ? AND timestamp <= ? "
                "AND key_id IS NOT NULL ORDER BY profile_id, timestamp, event_id",
                [*chunk, since_ms, until_ms]):
            out.setdefault(int(pid), []).append((int(ts), int(eid), int(kid)))
    return out


def _add_days(conn: Connection, rows: dict[int, list[Any]]) -> None:
    """Add (conversions, revenue, unattributed, unattributed revenue, fresh) to days; a
    day left with no conversion is deleted."""
    if not rows:
        return
    conn.executemany(
        "INSERT INTO attribution_days (day, conversions, revenue, unattributed, "
        "unattributed_revenue, fresh) VALUES (?,?,?,?,?,?) ON CONFLICT (day) DO UPDATE SET "
        "conversions = attribution_days.conversions + excluded.conversions, "
        "revenue = attribution_days.revenue + excluded.revenue, "
        "unattributed = attribution_days.unattributed + excluded.unattributed, "
        "unattributed_revenue = attribution_days.unattributed_revenue "
        "+ excluded.unattributed_revenue, fresh = attribution_days.fresh + excluded.fresh",
        [(day, *v) for day, v in sorted(rows.items())])
    conn.executemany("DELETE FROM attribution_days WHERE day = ? AND conversions <= 0",
                     [(day,) for day in sorted(rows)])


def _day(rows: dict[int, list[Any]], ts: int) -> list[Any]:
    return rows.setdefault(ts // DAY_MS, [0, 0.0, 0, 0.0, 0])


def add_conversions(conn: Connection, rows: Sequence[Conversion]) -> None:
    """Store conversions, not credited yet (`credit` does that); one stored already is
    left as it is."""
    known = {c[0] for c in conversions_by_id(conn, [r[0] for r in rows])} if rows else set()
    new = [r for r in rows if r[0] not in known]
    conn.executemany(
        "INSERT INTO attribution_conversions (event_id, profile_id, timestamp, revenue, "
        "touched, fresh, prev_ts) VALUES (?,?,?,?,0,0,NULL)", new)
    days: dict[int, list[Any]] = {}
    for _, _, ts, revenue in new:
        day = _day(days, ts)
        day[0] += 1
        day[1] += revenue
        day[2] += 1
        day[3] += revenue
    _add_days(conn, days)


def conversions_of(conn: Connection, profile_ids: Sequence[int], since_ms: int,
                   until_ms: int) -> list[Conversion]:
    """The conversions of these profiles with timestamps in [since, until]."""
    out: list[Conversion] = []
    for chunk in chunks(sorted(set(profile_ids)), 500):
        marks = ",".join("?" * len(chunk))
        out.extend((int(e), int(p), int(t), float(r)) for e, p, t, r in conn.execute(
            "SELECT event_id, profile_id, timestamp, revenue FROM attribution_conversions "
            f"WHERE profile_id IN ({marks}) AND timestamp >= ? AND timestamp <= ?",
            [*chunk, since_ms, until_ms]))
    return out


def conversions_by_id(conn: Connection, event_ids: Sequence[int]) -> list[Conversion]:
    """The stored conversions among these events."""
    out: list[Conversion] = []
    for chunk in chunks(sorted(set(event_ids)), 500):
        marks = ",".join("?" * len(chunk))
        out.extend((int(e), int(p), int(t), float(r)) for e, p, t, r in conn.execute(
            "SELECT event_id, profile_id, timestamp, revenue FROM attribution_conversions "
            f"WHERE event_id IN ({marks})", chunk))
    return out


# -- credits and their daily sums -------------------------------------------------------------

Sums = dict[tuple[int, int, int], list[Any]]
"""(hour, model, key id) → [conversions in the row, credited conversions, revenue]."""


def _add_to(sums: Sums, hour: int, model: int, kid: int, n: int, weight: float,
            revenue: float) -> None:
    entry = sums.get((hour, model, kid))
    if entry is None:
        sums[(hour, model, kid)] = [n, weight, weight * revenue]
    else:
        entry[0] += n
        entry[1] += weight
        entry[2] += weight * revenue


def _add_sums(conn: Connection, hourly: Sums) -> None:
    """Add these per-hour sums to attribution_hourly and, summed per day, to
    attribution_daily; a row whose conversions fall to 0 is deleted."""
    daily: Sums = {}
    for (hour, model, kid), (n, credited, earned) in hourly.items():
        entry = daily.setdefault((hour // 24, model, kid), [0, 0.0, 0.0])
        entry[0] += n
        entry[1] += credited
        entry[2] += earned
    for table, unit, sums in (("attribution_hourly", "hour", hourly),
                              ("attribution_daily", "day", daily)):
        conn.executemany(
            f"INSERT INTO {table} ({unit}, model, key_id, n, conversions, revenue) "
            f"VALUES (?,?,?,?,?,?) ON CONFLICT ({unit}, model, key_id) DO UPDATE SET "
            f"n = {table}.n + excluded.n, "
            f"conversions = {table}.conversions + excluded.conversions, "
            f"revenue = {table}.revenue + excluded.revenue",
            [(*k, *v) for k, v in sorted(sums.items())])
        conn.executemany(f"DELETE FROM {table} WHERE {unit} = ? AND model = ? "
                         "AND key_id = ? AND n <= 0",
                         sorted(k for k, v in sums.items() if v[0] < 0))


def credit(conn: Connection,
           credited: Sequence[tuple[Conversion, int, int, int | None, Sequence[Credit]]],
           ) -> None:
    """Write conversions' credits (none credited yet): (conversion, touched, fresh,
    the previous conversion's time within the lookback, credits)."""
    rows: list[tuple[int, int, int, float]] = []
    hourly: Sums = {}
    days: dict[int, list[Any]] = {}
    for (eid, _pid, ts, revenue), touched, fresh, _prev, credits in credited:
        if touched:
            totals = _day(days, ts)
            totals[2] -= 1
            totals[3] -= revenue
            totals[4] += fresh
        hour = ts // HOUR_MS
        for model, kid, weight in credits:
            rows.append((eid, model, kid, weight))
            _add_to(hourly, hour, model, kid, 1, weight, revenue)
    conn.executemany("UPDATE attribution_conversions SET touched = ?, fresh = ?, "
                     "prev_ts = ? WHERE event_id = ?",
                     [(touched, fresh, prev, c[0]) for c, touched, fresh, prev, _ in credited])
    _add_days(conn, days)
    if rows:
        conn.executemany("INSERT INTO attribution_credits (event_id, model, key_id, weight) "
                         "VALUES (?,?,?,?)", rows)
        _add_sums(conn, hourly)


def uncredit(conn: Connection, event_ids: Sequence[int]) -> None:
    """Take these conversions' credits back out of the daily and hourly sums (they stay
    stored, with no credit, until `credit` or `delete_conversions`)."""
    hourly: Sums = {}
    days: dict[int, list[Any]] = {}
    for chunk in chunks(sorted(set(event_ids)), 500):
        marks = ",".join("?" * len(chunk))
        for ts, revenue, fresh in conn.execute(
                "SELECT timestamp, revenue, fresh FROM attribution_conversions "
                f"WHERE event_id IN ({marks}) AND touched > 0", chunk):
            day = _day(days, int(ts))
            day[2] += 1
            day[3] += float(revenue)
            day[4] -= int(fresh)
        for ts, revenue, model, kid, weight in conn.execute(
                "SELECT v.timestamp, v.revenue, c.model, c.key_id, c.weight "
                "FROM attribution_credits c JOIN attribution_conversions v "
                f"ON v.event_id = c.event_id WHERE c.event_id IN ({marks})", chunk):
            _add_to(hourly, int(ts) // HOUR_MS, int(model), int(kid), -1, -float(weight),
                    float(revenue))
        conn.execute(f"DELETE FROM attribution_credits WHERE event_id IN ({marks})", chunk)
        conn.execute(f"UPDATE attribution_conversions SET touched = 0, fresh = 0, "
                     f"prev_ts = NULL WHERE event_id IN ({marks})", chunk)
    _add_days(conn, days)
    if hourly:
        _add_sums(conn, hourly)


def delete_conversions(conn: Connection, event_ids: Sequence[int]) -> None:
    """Delete conversions and take their credit out."""
    uncredit(conn, event_ids)
    days: dict[int, list[Any]] = {}
    for _, _, ts, revenue in conversions_by_id(conn, event_ids):  # unattributed now
        day = _day(days, ts)
        day[0] -= 1
        day[1] -= revenue
        day[2] -= 1
        day[3] -= revenue
    _add_days(conn, days)
    for chunk in chunks(sorted(set(event_ids)), 500):
        marks = ",".join("?" * len(chunk))
        conn.execute(f"DELETE FROM attribution_conversions WHERE event_id IN ({marks})", chunk)


# -- people ---------------------------------------------------------------------------------

def move_profile(conn: Connection, into: int, other: int) -> None:
    """A merge: `other`'s conversions are `into`'s now (the caller re-credits `into`'s
    conversions); its touchpoints moved with its timeline (store/profiles.py
    `merge_profiles`)."""
    conn.execute("UPDATE attribution_conversions SET profile_id = ? WHERE profile_id = ?",
                 (into, other))


def delete_profiles(conn: Connection, profile_ids: Sequence[int]) -> None:
    """Forget these people's touchpoints and conversions (and their credit)."""
    for chunk in chunks(sorted(set(profile_ids)), 500):
        marks = ",".join("?" * len(chunk))
        converted = [int(r[0]) for r in conn.execute(
            f"SELECT event_id FROM attribution_conversions WHERE profile_id IN ({marks})",
            chunk)]
        delete_conversions(conn, converted)
        _drop_touchpoints(conn, f"profile_id IN ({marks}) AND ", chunk)


def _drop_touchpoints(conn: Connection, where: str, params: Sequence[Any]) -> None:
    """Take the keys off the touchpoints `where` selects (a condition and AND, or ""),
    and delete the rows only a touchpoint kept: those of pruned events."""
    conn.execute(f"DELETE FROM profile_events WHERE {where}key_id IS NOT NULL AND NOT "
                 "EXISTS (SELECT 1 FROM events e WHERE e.id = profile_events.event_id)",
                 params)
    conn.execute(f"UPDATE profile_events SET key_id = NULL WHERE {where}key_id IS NOT NULL",
                 params)


def clear(conn: Connection) -> None:
    """Empty every table but the keys (a rebuild, or a change of settings). The state
    follows: merges are counted from the start again (`profiles rebuild` restarts their
    ids), and a rebuild of the credits under way starts over."""
    for table in TABLES:
        conn.execute(f"DELETE FROM {table}")
    _drop_touchpoints(conn, "", ())
    state = get_state(conn)
    if state is not None:
        state["merges"] = 0
        if state.get("upto") is not None:
            state["upto"] = 0
        set_state(conn, state)


# -- reading a window -----------------------------------------------------------------------

def _summed(conn: Connection, table: str, unit: str, first: int, end: int,
            ) -> list[tuple[int, int, float, float]]:
    return [(int(m), int(k), float(c), float(r)) for m, k, c, r in conn.execute(
        f"SELECT model, key_id, SUM(conversions), SUM(revenue) FROM {table} "
        f"WHERE {unit} >= ? AND {unit} < ? GROUP BY model, key_id", (first, end))]


def daily_sums(conn: Connection, first_day: int, end_day: int,
               ) -> list[tuple[int, int, float, float]]:
    """(model, key id, conversions, revenue) summed over days [first_day, end_day)."""
    return _summed(conn, "attribution_daily", "day", first_day, end_day)


def hourly_sums(conn: Connection, first_hour: int, end_hour: int,
                ) -> list[tuple[int, int, float, float]]:
    """(model, key id, conversions, revenue) summed over hours [first_hour, end_hour)."""
    return _summed(conn, "attribution_hourly", "hour", first_hour, end_hour)


def credit_sums(conn: Connection, since_ms: int, until_ms: int,
                ) -> list[tuple[int, int, float, float]]:
    """(model, key id, conversions, revenue) of the conversions in [since, until)."""
    return [(int(m), int(k), float(c), float(r)) for m, k, c, r in conn.execute(
        "SELECT c.model, c.key_id, SUM(c.weight), SUM(c.weight * v.revenue) "
        "FROM attribution_conversions v JOIN attribution_credits c "
        "ON c.event_id = v.event_id WHERE v.timestamp >= ? AND v.timestamp < ? "
        "GROUP BY c.model, c.key_id", (since_ms, until_ms))]


def whole_units(since_ms: int, until_ms: int, unit_ms: int,
                ) -> tuple[tuple[int, int] | None, list[tuple[int, int]]]:
    """The whole units (days, hours since the epoch) [first, end) in [since, until), and
    the parts of units left at either end."""
    first = -(-since_ms // unit_ms)
    end = until_ms // unit_ms
    if first >= end:
        return None, [(since_ms, until_ms)]
    edges = [(since_ms, first * unit_ms), (end * unit_ms, until_ms)]
    return (first, end), [(lo, hi) for lo, hi in edges if lo < hi]


def days_and_edges(since_ms: int, until_ms: int,
                   ) -> tuple[tuple[int, int] | None, list[tuple[int, int]]]:
    """The whole UTC days [first, end) in [since, until), and the parts of days left."""
    return whole_units(since_ms, until_ms, DAY_MS)


def conversion_totals(conn: Connection, since_ms: int, until_ms: int,
                      ) -> tuple[int, float, int, float, int]:
    """(conversions, revenue, unattributed conversions, their revenue, fresh touchpoints)
    in [since, until): whole days from their totals, the rest from the conversions."""
    days, edges = days_and_edges(since_ms, until_ms)
    parts = []
    if days is not None:
        parts.append(conn.execute(
            "SELECT COALESCE(SUM(conversions), 0), COALESCE(SUM(revenue), 0), "
            "COALESCE(SUM(unattributed), 0), COALESCE(SUM(unattributed_revenue), 0), "
            "COALESCE(SUM(fresh), 0) FROM attribution_days WHERE day >= ? AND day < ?",
            days).fetchone())
    for lo, hi in edges:
        parts.append(conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(revenue), 0), "
            "COALESCE(SUM(CASE WHEN touched = 0 THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN touched = 0 THEN revenue ELSE 0 END), 0), "
            "COALESCE(SUM(fresh), 0) FROM attribution_conversions "
            "WHERE timestamp >= ? AND timestamp < ?", (lo, hi)).fetchone())
    unattributed = sum(int(p[2]) for p in parts)
    return (sum(int(p[0]) for p in parts), sum(float(p[1]) for p in parts), unattributed,
            sum(float(p[3]) for p in parts) if unattributed else 0.0,
            sum(int(p[4]) for p in parts))


def credited_touchpoints(conn: Connection, since_ms: int, until_ms: int,
                         lookback_ms: int, fresh: int) -> int:
    """How many distinct touchpoints the conversions in [since, until) credit, given the
    `fresh` ones of those conversions.

    A conversion credits its profile's touchpoints from `lookback` before it up to it;
    those of a profile's conversions one after another overlap only with the one just
    before. So the distinct ones are the `fresh` ones of every conversion in the window,
    plus, for a profile's first conversion in the window, those it shares with the
    conversion before it: that one is before the window and within `lookback`, so only
    the window's first `lookback` is read, and of it only the conversions that share
    touchpoints with the one before (touched > fresh: they have an index of their own).
    """
    shared = conn.execute(
        "SELECT COALESCE(SUM(touched - fresh), 0) FROM attribution_conversions "
        "WHERE timestamp >= ? AND timestamp < ? AND prev_ts < ? AND touched > fresh",
        (since_ms, min(until_ms, since_ms + lookback_ms + 1), since_ms)).fetchone()[0]
    return fresh + int(shared)


# -- the state and the rebuild's reads ------------------------------------------------------

_STATE = "attribution_credits"


def get_state(conn: Connection) -> dict[str, Any] | None:
    """What the tables were built with: {"fingerprint", "upto" (None when complete, else
    the last profile id a rebuild reached), "merges" (the last merge followed)}."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (_STATE,)).fetchone()
    if row is None or row[0] is None:
        return None
    value = orjson.loads(row[0])
    return value if isinstance(value, dict) else None


def set_state(conn: Connection, state: dict[str, Any]) -> None:
    """Write the state (inside the caller's transaction)."""
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                 "SET value = excluded.value", (_STATE, orjson.dumps(state).decode()))


def uncounted_copies(conn: Connection, orders: Iterable[tuple[str, str]]) -> dict[int, int]:
    """{event id: timestamp} of the copies of these (event, order id) orders that don't
    count (store/orders.py)."""
    wanted = set(orders)
    out: dict[int, int] = {}
    for chunk in chunks(sorted({oid for _, oid in wanted}), 500):
        marks = ",".join("?" * len(chunk))
        for eid, event, oid, ts in conn.execute(
                "SELECT event_id, event, order_id, timestamp FROM order_copies "
                f"WHERE order_id IN ({marks}) AND counted = 0", chunk):
            if (event, oid) in wanted:
                out[int(eid)] = int(ts)
    return out


def timeline_candidates(conn: Connection, profile_ids: Sequence[int], *,
                        goal_events: Sequence[str], message_events: Sequence[str],
                        kanal_key_kind: str) -> Iterator[tuple[int, int, int, str, str | None,
                                                               str, str]]:
    """(profile, timestamp, event id, type, event, key kind, body) of these profiles'
    events that may be a touchpoint or a conversion (the pre-filter of
    store/attribution.py), the copies of orders that don't count left out. The body is
    the stored text, for its properties and context (store/events.py `slim_body`)."""
    marks = ",".join("?" * len(profile_ids))
    goals = ",".join("?" * len(goal_events))
    messages = ",".join("?" * len(message_events))
    contains = conn.dialect.contains
    sql = (
        "SELECT pe.profile_id, pe.timestamp, pe.event_id, e.type, e.event, e.key_kind, "
        "e.body FROM profile_events pe JOIN events e ON e.id = pe.event_id "
        f"WHERE pe.profile_id IN ({marks}) AND ("
        f"(e.type = 'track' AND e.event IN ({goals})) "
        f"OR (e.key_kind = ? AND e.event IN ({messages})) "
        f"OR (e.type IN ('page', 'screen') AND {contains('e.body', REFERRER)}) "
        f"OR {contains('e.body', CAMPAIGN)}) "
        "AND NOT EXISTS (SELECT 1 FROM order_copies oc WHERE oc.event_id = pe.event_id "
        "AND oc.counted = 0)"
    )
    for row in conn.execute(sql, [*profile_ids, *goal_events, kanal_key_kind,
                                  *message_events]).fetchall():
        yield (int(row[0]), int(row[1]), int(row[2]), str(row[3]), row[4], str(row[5]),
               str(row[6]))


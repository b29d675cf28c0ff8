"""Profiles, identities, merges, the profile timeline, suppressions and segment tables.

Written by the processor's profiles and segments steps, `kanal profiles rebuild`,
`kanal forget` and `kanal segments apply`; read by the admin API and the CLI.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import orjson

from ..money import order_value
from . import onsite, product_activity
from .events import _COLUMNS, StoredEvent, _stored
from .orders import forget_copies

# Identity kinds, in the order a bare value given by an operator is looked up.
KINDS = ("user_id", "email", "phone", "anonymous_id", "push_token", "webpush")
_SUPPRESSION_SECRET = "suppression_secret"
DAY_MS = 86_400_000
_OWN = "kanal"
"""key_kind of Kanal's own events (profiles.step.KANAL_KEY_KIND): never a person's doing."""


def _dumps(state: dict[str, Any]) -> str:
    # orjson writes NaN and infinities as null, where json writes NaN / Infinity and reads
    # them back (an order's revenue may be "NaN"): any null falls back to json, as do
    # integers beyond 64 bits and lone surrogates, which orjson refuses.
    try:
        out = orjson.dumps(state, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        out = b"null"
    if b"null" in out:
        return json.dumps(state, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return out.decode()


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # NaN / Infinity, written by json (see _dumps)
        return json.loads(text)


def widen_cache(conn: sqlite3.Connection, mib: int = 64) -> None:
    """Give a connection a page cache of `mib` MiB (SQLite's default is 2 MiB).

    A processor batch touches hundreds of profiles, identities and timeline pages spread
    over the tables; with the default cache they are re-read from the OS and spilled
    mid-transaction, which costs more system time than the batch's Python work.
    """
    conn.execute(f"PRAGMA cache_size = -{int(mib) * 1024}")


# -- identities -------------------------------------------------------------------------

def identity_profile(conn: sqlite3.Connection, kind: str, value: str) -> int | None:
    """The profile an identity points at, or None."""
    row = conn.execute(
        "SELECT profile_id FROM identities WHERE kind = ? AND value = ?", (kind, value)
    ).fetchone()
    return None if row is None else int(row[0])


def identity_profiles(conn: sqlite3.Connection,
                      keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The profile of each of these (kind, value) identities that exists."""
    by_kind: dict[str, set[str]] = {}
    for kind, value in keys:
        by_kind.setdefault(kind, set()).add(value)
    out: dict[tuple[str, str], int] = {}
    for kind, values in by_kind.items():
        for chunk in _chunks(sorted(values), 500):
            marks = ",".join("?" * len(chunk))
            for value, pid in conn.execute(
                    f"SELECT value, profile_id FROM identities WHERE kind = ? "
                    f"AND value IN ({marks})", [kind, *chunk]):
                out[(kind, str(value))] = int(pid)
    return out


def add_identities(conn: sqlite3.Connection,
                   rows: Sequence[tuple[str, str, int, int | None]]) -> None:
    """Point new identities at profiles: (kind, value, profile_id, first event id)."""
    conn.executemany(
        "INSERT INTO identities (kind, value, profile_id, first_event) VALUES (?, ?, ?, ?)",
        rows,
    )


def add_identity(conn: sqlite3.Connection, kind: str, value: str, profile_id: int,
                 event_id: int | None) -> None:
    """Point an identity at a profile (it must not point anywhere yet)."""
    conn.execute(
        "INSERT INTO identities (kind, value, profile_id, first_event) VALUES (?, ?, ?, ?)",
        (kind, value, profile_id, event_id),
    )


def delete_identity(conn: sqlite3.Connection, kind: str, value: str) -> bool:
    """Remove an identity (a push subscription the push service says is gone)."""
    cur = conn.execute("DELETE FROM identities WHERE kind = ? AND value = ?", (kind, value))
    return bool(cur.rowcount)


def profile_identities(conn: sqlite3.Connection, profile_id: int) -> list[tuple[str, str]]:
    """(kind, value) of every identity of a profile, sorted."""
    return [(str(k), str(v)) for k, v in conn.execute(
        "SELECT kind, value FROM identities WHERE profile_id = ? ORDER BY kind, value",
        (profile_id,),
    )]


def identified_profiles(conn: sqlite3.Connection, profile_ids: Iterable[int]) -> set[int]:
    """Which of these profiles hold an identity other than an anonymousId."""
    ids = list(set(profile_ids))
    out: set[int] = set()
    for chunk in _chunks(ids, 500):
        marks = ",".join("?" * len(chunk))
        out.update(int(r[0]) for r in conn.execute(
            f"SELECT DISTINCT profile_id FROM identities WHERE profile_id IN ({marks}) "
            "AND kind != 'anonymous_id'", chunk))
    return out


def find_profile(conn: sqlite3.Connection, value: str, kind: str | None = None) -> int | None:
    """The profile of an identity value, trying every kind (or just `kind`)."""
    for k in (kind,) if kind else KINDS:
        found = identity_profile(conn, k, value)
        if found is not None:
            return found
    return None


def search_identities(conn: sqlite3.Connection, prefix: str, limit: int) -> list[int]:
    """Profiles with an identity starting with `prefix` (case-sensitive), newest first."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = conn.execute(
        "SELECT DISTINCT i.profile_id FROM identities i JOIN profiles p ON p.id = i.profile_id "
        "WHERE i.value >= ? AND i.value < ? AND i.value LIKE ? ESCAPE '\\' "
        "ORDER BY p.last_seen DESC LIMIT ?",
        (prefix, prefix + "\U0010ffff", escaped + "%", limit),
    ).fetchall()
    return [int(r[0]) for r in rows]


# -- profiles ---------------------------------------------------------------------------

def create_profile(conn: sqlite3.Connection, created_at: int, state: dict[str, Any]) -> int:
    """A new profile; returns its id."""
    cur = conn.execute(
        "INSERT INTO profiles (created_at, first_seen, last_seen, state) VALUES (?, ?, ?, ?)",
        (created_at, state.get("first"), state.get("last"), _dumps(state)),
    )
    return int(cur.lastrowid or 0)


def load_states(conn: sqlite3.Connection, profile_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The stored state of each existing profile among `profile_ids`."""
    ids = list(set(profile_ids))
    out: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(ids, 500):
        marks = ",".join("?" * len(chunk))
        for pid, state in conn.execute(
                f"SELECT id, state FROM profiles WHERE id IN ({marks})", chunk):
            out[int(pid)] = _loads(state)
    return out


def save_states(conn: sqlite3.Connection, states: dict[int, dict[str, Any]]) -> None:
    """Write profile states back (first/last seen mirrored into columns for sorting)."""
    conn.executemany(
        "UPDATE profiles SET first_seen = ?, last_seen = ?, state = ? WHERE id = ?",
        [(s.get("first"), s.get("last"), _dumps(s), pid) for pid, s in states.items()],
    )


def profile_row(conn: sqlite3.Connection, profile_id: int) -> dict[str, Any] | None:
    """id, created_at and state of one profile, or None."""
    row = conn.execute(
        "SELECT id, created_at, state FROM profiles WHERE id = ?", (profile_id,)
    ).fetchone()
    if row is None:
        return None
    return {"id": int(row[0]), "created_at": int(row[1]), "state": _loads(row[2])}


def profile_ids(conn: sqlite3.Connection, *, after: int = 0, limit: int = 500) -> list[int]:
    """Profile ids above `after`, ascending (for sweeps and dumps)."""
    return [int(r[0]) for r in conn.execute(
        "SELECT id FROM profiles WHERE id > ? ORDER BY id LIMIT ?", (after, limit))]


def recent_profiles(conn: sqlite3.Connection, limit: int, offset: int = 0) -> list[int]:
    """Profiles seen most recently first."""
    return [int(r[0]) for r in conn.execute(
        "SELECT id FROM profiles ORDER BY last_seen DESC, id DESC LIMIT ? OFFSET ?",
        (limit, offset))]


def count_profiles(conn: sqlite3.Connection) -> int:
    """How many profiles exist."""
    return int(conn.execute("SELECT count(*) FROM profiles").fetchone()[0])


def merge_profiles(conn: sqlite3.Connection, into: int, other: int, *, event_id: int | None,
                   reason: str, at: int, state: dict[str, Any] | None) -> None:
    """Move everything of `other` onto `into`, delete `other`, record the merge.

    `state` is the merged state of `into`; None when the caller saves it later (the
    processor writes each profile once a batch, with `save_states`).
    """
    conn.execute("UPDATE identities SET profile_id = ? WHERE profile_id = ?", (into, other))
    conn.execute("UPDATE profile_events SET profile_id = ? WHERE profile_id = ?", (into, other))
    _move_active_days(conn, into, other)
    product_activity.move_profile(conn, into, other)
    onsite.move_exposures(conn, into, other)
    conn.execute("DELETE FROM segment_members WHERE profile_id = ?", (other,))
    conn.execute("DELETE FROM profiles WHERE id = ?", (other,))
    if state is not None:
        conn.execute(
            "UPDATE profiles SET first_seen = ?, last_seen = ?, state = ? WHERE id = ?",
            (state.get("first"), state.get("last"), _dumps(state), into),
        )
    conn.execute(
        "INSERT INTO merges (into_profile, from_profile, event_id, reason, at) "
        "VALUES (?, ?, ?, ?, ?)", (into, other, event_id, reason, at),
    )


def merged_into(conn: sqlite3.Connection, profile_id: int) -> int | None:
    """Where a merged-away profile lives now (following chains of merges), or None."""
    seen = set()
    current = profile_id
    while current not in seen:
        seen.add(current)
        row = conn.execute(
            "SELECT into_profile FROM merges WHERE from_profile = ? ORDER BY id DESC LIMIT 1",
            (current,),
        ).fetchone()
        if row is None:
            return current if current != profile_id else None
        current = int(row[0])
    return None


def profile_merges(conn: sqlite3.Connection, profile_id: int) -> list[dict[str, Any]]:
    """Merges into this profile, oldest first."""
    keys = ("into", "from", "eventId", "reason", "at")
    return [dict(zip(keys, r, strict=True)) for r in conn.execute(
        "SELECT into_profile, from_profile, event_id, reason, at FROM merges "
        "WHERE into_profile = ? ORDER BY id", (profile_id,))]


# -- timeline ---------------------------------------------------------------------------

def add_profile_events(conn: sqlite3.Connection, rows: Sequence[tuple[int, int, int]]) -> None:
    """Put (profile_id, timestamp, event_id) on profiles' timelines."""
    conn.executemany(
        "INSERT OR IGNORE INTO profile_events (profile_id, timestamp, event_id) VALUES (?,?,?)",
        rows,
    )


def timeline(conn: sqlite3.Connection, profile_id: int, *, limit: int = 50,
             before: int | None = None) -> list[StoredEvent]:
    """A profile's events across origins, newest first (`before`: a timestamp in ms)."""
    cols = ", ".join("e." + c.strip() for c in _COLUMNS.split(","))
    rows = conn.execute(
        f"SELECT {cols} FROM profile_events pe JOIN events e ON e.id = pe.event_id "
        "WHERE pe.profile_id = ? AND pe.timestamp < ? "
        "ORDER BY pe.timestamp DESC, pe.event_id DESC LIMIT ?",
        (profile_id, before if before is not None else 2**62, limit),
    ).fetchall()
    return [_stored(r) for r in rows]


# Of the copies of an order (store/orders.py), segments count the one that counts.
_COUNTED = ("AND NOT EXISTS (SELECT 1 FROM order_copies oc WHERE oc.event_id = e.id "
            "AND oc.counted = 0)")


def profile_events_since(conn: sqlite3.Connection, profile_id: int, name: str,
                         since: int) -> Iterator[dict[str, Any]]:
    """Bodies of a profile's track events called `name` at or after `since` (ms)."""
    for (body,) in conn.execute(
            "SELECT e.body FROM profile_events pe JOIN events e ON e.id = pe.event_id "
            "WHERE pe.profile_id = ? AND pe.timestamp >= ? AND e.event = ? "
            f"AND e.type = 'track' {_COUNTED}", (profile_id, since, name)):
        yield orjson.loads(body)


def profiles_events_since(conn: sqlite3.Connection, profile_ids: Sequence[int], name: str,
                          since: int) -> dict[int, list[dict[str, Any]]]:
    """`profile_events_since` for many profiles at once: {profile_id: bodies}."""
    out: dict[int, list[dict[str, Any]]] = {pid: [] for pid in profile_ids}
    for chunk in _chunks(sorted(set(profile_ids)), 500):
        marks = ",".join("?" * len(chunk))
        for pid, body in conn.execute(
                "SELECT pe.profile_id, e.body FROM profile_events pe "
                "JOIN events e ON e.id = pe.event_id "
                f"WHERE pe.profile_id IN ({marks}) AND pe.timestamp >= ? AND e.event = ? "
                f"AND e.type = 'track' {_COUNTED}", [*chunk, since, name]):
            out[int(pid)].append(orjson.loads(body))
    return out


def profiles_identities(conn: sqlite3.Connection,
                        profile_ids: Iterable[int]) -> dict[int, list[tuple[str, str]]]:
    """`profile_identities` for many profiles at once: {profile_id: [(kind, value)]}."""
    ids = sorted(set(profile_ids))
    out: dict[int, list[tuple[str, str]]] = {pid: [] for pid in ids}
    for chunk in _chunks(ids, 500):
        marks = ",".join("?" * len(chunk))
        for pid, kind, value in conn.execute(
                f"SELECT profile_id, kind, value FROM identities WHERE profile_id IN ({marks}) "
                "ORDER BY profile_id, kind, value", chunk):
            out[int(pid)].append((str(kind), str(value)))
    return out


def profiles_of_events(conn: sqlite3.Connection, event_ids: Sequence[int]) -> set[int]:
    """The profiles whose timelines hold any of these events."""
    out: set[int] = set()
    for chunk in _chunks(list(event_ids), 500):
        marks = ",".join("?" * len(chunk))
        out.update(int(r[0]) for r in conn.execute(
            f"SELECT DISTINCT profile_id FROM profile_events WHERE event_id IN ({marks})",
            chunk))
    return out


# -- rebuild and forget -----------------------------------------------------------------

def clear_profiles(conn: sqlite3.Connection) -> None:
    """Delete every profile, identity, timeline row, merge and membership, and the daily
    aggregates and order copies built from the timelines (for rebuild)."""
    for table in ("profile_events", "identities", "segment_members", "merges", "profiles",
                  "active_days", "active_spans", "track_daily", "order_copies",
                  "onsite_exposures"):
        conn.execute(f"DELETE FROM {table}")
    product_activity.clear_people(conn)
    conn.execute("DELETE FROM sqlite_sequence WHERE name IN ('profiles', 'merges')")


def delete_profile(conn: sqlite3.Connection, profile_id: int) -> int:
    """Delete a profile, its events and everything derived; returns events deleted."""
    idents = profile_identities(conn, profile_id)
    event_ids = [int(r[0]) for r in conn.execute(
        "SELECT event_id FROM profile_events WHERE profile_id = ?", (profile_id,))]
    # Events of this person the processor has not reached yet are found by their ids.
    users = [v for k, v in idents if k == "user_id"]
    anons = [v for k, v in idents if k == "anonymous_id"]
    for column, values in (("user_id", users), ("anonymous_id", anons)):
        for chunk in _chunks(values, 500):
            marks = ",".join("?" * len(chunk))
            event_ids.extend(int(r[0]) for r in conn.execute(
                f"SELECT id FROM events WHERE {column} IN ({marks})", chunk))
    deleted = delete_events(conn, event_ids)
    conn.execute("DELETE FROM profile_events WHERE profile_id = ?", (profile_id,))
    _move_active_days(conn, None, profile_id)
    product_activity.delete_profile(conn, profile_id)
    onsite.delete_profile(conn, profile_id, idents)
    conn.execute("DELETE FROM identities WHERE profile_id = ?", (profile_id,))
    conn.execute("DELETE FROM segment_members WHERE profile_id = ?", (profile_id,))
    conn.execute("DELETE FROM merges WHERE into_profile = ? OR from_profile = ?",
                 (profile_id, profile_id))
    conn.execute("DELETE FROM profiles WHERE id = ?", (profile_id,))
    return deleted


def delete_events(conn: sqlite3.Connection, event_ids: Iterable[int]) -> int:
    """Delete events from the log (privacy only); returns how many were deleted.

    The daily aggregates lose what the deleted events added to them.
    """
    ids = sorted(set(event_ids))
    deleted = 0
    days: set[tuple[int, int]] = set()
    for chunk in _chunks(ids, 500):
        marks = ",".join("?" * len(chunk))
        days.update(_retract_track_events(conn, chunk))
        conn.execute(f"DELETE FROM profile_events WHERE event_id IN ({marks})", chunk)
        forget_copies(conn, chunk)
        deleted += conn.execute(f"DELETE FROM events WHERE id IN ({marks})", chunk).rowcount
    _recheck_active_days(conn, days)
    return deleted


# -- daily aggregates (the KPI overview) ------------------------------------------------
# active_days, active_spans and track_daily (store/schema.py _m009) hold what the overview
# used to count from the timelines: people's own events on a timeline, by UTC day. The
# profiles step adds to them in the processor's transaction (so a batch counts exactly
# once), a merge moves a person's days to the survivor, deleting events takes away what
# they added, and a rebuild clears them with the timelines and replays.
#
# active_spans(day, prev_day, people) counts the people active on `day` whose previous
# active day was `prev_day` (NO_DAY: none). People active that day = the sum over
# prev_day; distinct people over days [a, b] = the sum over day in [a, b] with
# prev_day < a (each person counted on their first day in the window). So the overview
# reads at most (days of the window × days of history) rows, however many people.

NO_DAY = -(2 ** 40)
"""active_spans.prev_day of a person's first active day."""


def add_daily_activity(conn: sqlite3.Connection, active: Iterable[tuple[int, int]],
                       tracks: Mapping[tuple[int, str], tuple[int, float]]) -> None:
    """Record (day, profile_id) pairs of people's own events, and add (count, revenue)
    of people's track events to their (day, event name)."""
    spans: Counter[tuple[int, int]] = Counter()
    for day, pid in sorted(set(active)):
        _add_active_day(conn, day, pid, spans)
    _save_spans(conn, spans)
    conn.executemany(
        "INSERT INTO track_daily (day, event, count, revenue) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (day, event) DO UPDATE SET count = count + excluded.count, "
        "revenue = revenue + excluded.revenue",
        [(day, name, n, revenue) for (day, name), (n, revenue) in sorted(tracks.items())])


def _neighbours(conn: sqlite3.Connection, day: int, pid: int) -> tuple[int, int | None]:
    """(the person's active day before `day` or NO_DAY, the one after or None)."""
    prev, nxt = conn.execute(
        "SELECT (SELECT max(day) FROM active_days WHERE profile_id = ?1 AND day < ?2), "
        "(SELECT min(day) FROM active_days WHERE profile_id = ?1 AND day > ?2)",
        (pid, day)).fetchone()
    return (NO_DAY if prev is None else int(prev)), (None if nxt is None else int(nxt))


def _add_active_day(conn: sqlite3.Connection, day: int, pid: int,
                    spans: Counter[tuple[int, int]]) -> None:
    if not conn.execute("INSERT OR IGNORE INTO active_days (day, profile_id) VALUES (?, ?)",
                        (day, pid)).rowcount:
        return
    _link(spans, day, *_neighbours(conn, day, pid))


def _link(spans: Counter[tuple[int, int]], day: int, prev: int, nxt: int | None) -> None:
    """Count a new active day between a person's days `prev` and `nxt`."""
    spans[(day, prev)] += 1
    if nxt is not None:  # the next day's previous one is now `day`
        spans[(nxt, prev)] -= 1
        spans[(nxt, day)] += 1


def _remove_active_day(conn: sqlite3.Connection, day: int, pid: int,
                       spans: Counter[tuple[int, int]]) -> None:
    if not conn.execute("DELETE FROM active_days WHERE day = ? AND profile_id = ?",
                        (day, pid)).rowcount:
        return
    prev, nxt = _neighbours(conn, day, pid)
    spans[(day, prev)] -= 1
    if nxt is not None:
        spans[(nxt, day)] -= 1
        spans[(nxt, prev)] += 1


def _save_spans(conn: sqlite3.Connection, spans: Counter[tuple[int, int]]) -> None:
    changed = sorted((day, prev, n) for (day, prev), n in spans.items() if n)
    conn.executemany(
        "INSERT INTO active_spans (day, prev_day, people) VALUES (?, ?, ?) "
        "ON CONFLICT (day, prev_day) DO UPDATE SET people = people + excluded.people",
        changed)
    conn.executemany("DELETE FROM active_spans WHERE day = ? AND prev_day = ? AND people = 0",
                     [(day, prev) for day, prev, n in changed if n < 0])


def _move_active_days(conn: sqlite3.Connection, into: int | None, other: int) -> None:
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


def _retract_track_events(conn: sqlite3.Connection,
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
            "SELECT e.timestamp, e.event, json_extract(e.body, '$.properties') FROM events e "
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


def _recheck_active_days(conn: sqlite3.Connection, days: Iterable[tuple[int, int]]) -> None:
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


# -- suppressions -----------------------------------------------------------------------

def suppression_secret(conn: sqlite3.Connection) -> str:
    """The per-database HMAC key of suppression records (created on first use)."""
    conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                 (_SUPPRESSION_SECRET, secrets.token_hex(32)))
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (_SUPPRESSION_SECRET,)).fetchone()
    return str(row[0])


def add_suppressions(conn: sqlite3.Connection, hashes: Iterable[str], at: int,
                     note: str | None = None) -> None:
    """Keep suppression records (keyed hashes of forgotten identities)."""
    conn.executemany(
        "INSERT OR IGNORE INTO suppressions (hash, created_at, note) VALUES (?, ?, ?)",
        [(h, at, note) for h in hashes],
    )


def any_suppressions(conn: sqlite3.Connection) -> bool:
    """True once anyone has been forgotten."""
    return conn.execute("SELECT 1 FROM suppressions LIMIT 1").fetchone() is not None


def suppressed(conn: sqlite3.Connection, hashes: Iterable[str]) -> set[str]:
    """Which of these hashes are suppressed."""
    found: set[str] = set()
    for chunk in _chunks(list(set(hashes)), 500):
        marks = ",".join("?" * len(chunk))
        found.update(str(r[0]) for r in conn.execute(
            f"SELECT hash FROM suppressions WHERE hash IN ({marks})", chunk))
    return found


def count_suppressions(conn: sqlite3.Connection) -> int:
    """How many suppression records exist."""
    return int(conn.execute("SELECT count(*) FROM suppressions").fetchone()[0])


# -- segments ---------------------------------------------------------------------------

def segment_definitions(conn: sqlite3.Connection) -> list[tuple[str, int, dict[str, Any]]]:
    """(name, version, definition) of every segment, by name."""
    return [(str(n), int(v), json.loads(d)) for n, v, d in conn.execute(
        "SELECT name, version, definition FROM segment_definitions ORDER BY name")]


def put_segment_definitions(conn: sqlite3.Connection, definitions: dict[str, dict[str, Any]],
                            at: int) -> tuple[list[str], list[str]]:
    """Replace the set of segments; returns (new or changed names, removed names)."""
    current = {n: (v, d) for n, v, d in segment_definitions(conn)}
    changed = []
    for name, definition in definitions.items():
        old = current.get(name)
        if old is not None and old[1] == definition:
            continue
        version = 1 if old is None else old[0] + 1
        conn.execute(
            "INSERT INTO segment_definitions (name, version, definition, updated_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET version = excluded.version, "
            "definition = excluded.definition, updated_at = excluded.updated_at",
            (name, version, _dumps(definition), at),
        )
        conn.execute("DELETE FROM segment_members WHERE segment = ?", (name,))
        changed.append(name)
    removed = sorted(set(current) - set(definitions))
    for name in removed:
        conn.execute("DELETE FROM segment_definitions WHERE name = ?", (name,))
        conn.execute("DELETE FROM segment_members WHERE segment = ?", (name,))
    return changed, removed


def memberships(conn: sqlite3.Connection, profile_ids: Iterable[int]) -> dict[int, set[str]]:
    """Segments each of these profiles is in."""
    ids = list(set(profile_ids))
    out: dict[int, set[str]] = {pid: set() for pid in ids}
    for chunk in _chunks(ids, 500):
        marks = ",".join("?" * len(chunk))
        for seg, pid in conn.execute(
                f"SELECT segment, profile_id FROM segment_members WHERE profile_id IN ({marks})",
                chunk):
            out[int(pid)].add(str(seg))
    return out


def profile_segments(conn: sqlite3.Connection, profile_id: int) -> list[tuple[str, int]]:
    """(segment, entered_at) of one profile."""
    return [(str(s), int(t)) for s, t in conn.execute(
        "SELECT segment, entered_at FROM segment_members WHERE profile_id = ? ORDER BY segment",
        (profile_id,))]


def set_membership(conn: sqlite3.Connection, segment: str, profile_id: int, member: bool,
                   at: int) -> None:
    """Add or remove one membership."""
    if member:
        conn.execute("INSERT OR IGNORE INTO segment_members (segment, profile_id, entered_at) "
                     "VALUES (?, ?, ?)", (segment, profile_id, at))
    else:
        conn.execute("DELETE FROM segment_members WHERE segment = ? AND profile_id = ?",
                     (segment, profile_id))


def set_memberships(conn: sqlite3.Connection, changes: Sequence[tuple[str, int, bool]],
                    at: int) -> None:
    """`set_membership` for many (segment, profile_id, member) changes."""
    conn.executemany("INSERT OR IGNORE INTO segment_members (segment, profile_id, entered_at) "
                     "VALUES (?, ?, ?)", [(s, p, at) for s, p, m in changes if m])
    conn.executemany("DELETE FROM segment_members WHERE segment = ? AND profile_id = ?",
                     [(s, p) for s, p, m in changes if not m])


def segment_members(conn: sqlite3.Connection, segment: str, *, limit: int = 100,
                    after: int = 0) -> list[tuple[int, int]]:
    """(profile_id, entered_at) of a segment's members, by profile id."""
    return [(int(p), int(t)) for p, t in conn.execute(
        "SELECT profile_id, entered_at FROM segment_members WHERE segment = ? "
        "AND profile_id > ? ORDER BY profile_id LIMIT ?", (segment, after, limit))]


def segment_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Members per segment."""
    return {str(s): int(n) for s, n in conn.execute(
        "SELECT segment, count(*) FROM segment_members GROUP BY segment")}


def first_source(conn: sqlite3.Connection) -> int | None:
    """The oldest source (where Kanal's own events are filed), or None."""
    row = conn.execute("SELECT min(id) FROM sources").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def _chunks(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def suppression_state(conn: sqlite3.Connection) -> tuple[str | None, set[str]]:
    """(HMAC key, every suppression hash) without writing anything; (None, set()) before
    anyone has been forgotten."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (_SUPPRESSION_SECRET,)).fetchone()
    if row is None:
        return None, set()
    return str(row[0]), {str(r[0]) for r in conn.execute("SELECT hash FROM suppressions")}

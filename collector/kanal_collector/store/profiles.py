"""Profiles (one row per person, with its state) and merges.

Written by the processor's profiles step, `kanal profiles rebuild` and `kanal forget`;
read by the admin API and the CLI. Identities, the timeline, the daily aggregates,
segments and forgetting have modules of their own (identities, timeline, activity,
segments, privacy).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from . import credits, onsite, product_activity, row_counts
from .activity import move_active_days, write_active_days
from .chunks import chunks
from .connection import Connection
from .dialect import SQLITE


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


def widen_cache(conn: Connection, mib: int = 16) -> None:
    """Give a connection a page cache of `mib` MiB (SQLite's default is 2 MiB).

    A processor batch touches hundreds of profiles, identities and timeline pages spread
    over the tables; with the default cache they are re-read from the OS and spilled
    mid-transaction. A bigger cache stopped paying at about 8 MiB: on a 1M-event database
    20,000 events on top ran at the same rate (within the runs' noise) with 8, 16, 32 and
    64 MiB, the pages coming from the OS's cache. It is memory `kanal serve` keeps, though:
    with 64 MiB the server held about 28 MB more after applying 5,000 events on a
    1M-event database, and on a bigger one the whole cache fills.
    """
    if conn.dialect.name == SQLITE:  # PostgreSQL's cache is the server's shared_buffers
        conn.execute(f"PRAGMA cache_size = -{int(mib) * 1024}")


def create_profile(conn: Connection, created_at: int, state: dict[str, Any]) -> int:
    """A new profile; returns its id."""
    row = conn.execute(
        "INSERT INTO profiles (created_at, first_seen, last_seen, state) VALUES (?, ?, ?, ?) "
        "RETURNING id",
        (created_at, state.get("first"), state.get("last"), _dumps(state)),
    ).fetchone()
    return int(row[0])


def load_states(conn: Connection, profile_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The stored state of each existing profile among `profile_ids`."""
    ids = list(set(profile_ids))
    out: dict[int, dict[str, Any]] = {}
    for chunk in chunks(ids, 500):
        marks = ",".join("?" * len(chunk))
        for pid, state in conn.execute(
                f"SELECT id, state FROM profiles WHERE id IN ({marks})", chunk):
            out[int(pid)] = _loads(state)
    return out


def save_states(conn: Connection, states: dict[int, dict[str, Any]],
                days: Mapping[int, str | None] | None = None) -> None:
    """Write profile states back (first/last seen mirrored into columns for sorting),
    and of the people in `days` their active days (store/activity.py) in the same
    write of the row."""
    days = days or {}
    conn.executemany(
        "UPDATE profiles SET first_seen = ?, last_seen = ?, state = ? WHERE id = ?",
        [(s.get("first"), s.get("last"), _dumps(s), pid) for pid, s in states.items()
         if pid not in days],
    )
    conn.executemany(
        "UPDATE profiles SET first_seen = ?, last_seen = ?, state = ?, active_days = ? "
        "WHERE id = ?",
        [(s.get("first"), s.get("last"), _dumps(s), days[pid], pid)
         for pid, s in states.items() if pid in days],
    )
    write_active_days(conn, {pid: text for pid, text in days.items() if pid not in states})


def profile_row(conn: Connection, profile_id: int) -> dict[str, Any] | None:
    """id, created_at and state of one profile, or None."""
    row = conn.execute(
        "SELECT id, created_at, state FROM profiles WHERE id = ?", (profile_id,)
    ).fetchone()
    if row is None:
        return None
    return {"id": int(row[0]), "created_at": int(row[1]), "state": _loads(row[2])}


def profile_ids(conn: Connection, *, after: int = 0, limit: int = 500) -> list[int]:
    """Profile ids above `after`, ascending (for sweeps and dumps)."""
    return [int(r[0]) for r in conn.execute(
        "SELECT id FROM profiles WHERE id > ? ORDER BY id LIMIT ?", (after, limit))]


def profiles_seen_between(conn: Connection, column: str, low: int, high: int) -> list[int]:
    """Profiles whose `column` (last_seen: it is indexed) is from `low` to `high` ms."""
    if column != "last_seen":
        raise ValueError(f"no index on profiles.{column}")
    return [int(r[0]) for r in conn.execute(
        "SELECT id FROM profiles WHERE last_seen BETWEEN ? AND ?", (low, high))]


def recent_profiles(conn: Connection, limit: int, offset: int = 0) -> list[int]:
    """Profiles seen most recently first."""
    return [int(r[0]) for r in conn.execute(
        "SELECT id FROM profiles ORDER BY last_seen DESC NULLS LAST, id DESC LIMIT ? OFFSET ?",
        (limit, offset))]


def count_profiles(conn: Connection) -> int:
    """How many profiles exist (kept by store/row_counts.py's triggers)."""
    return row_counts.rows(conn, "profiles")


def merge_profiles(conn: Connection, into: int, other: int, *, event_id: int | None,
                   reason: str, at: int, state: dict[str, Any] | None) -> None:
    """Move everything of `other` onto `into`, delete `other`, record the merge.

    `state` is the merged state of `into`; None when the caller saves it later (the
    processor writes each profile once a batch, with `save_states`).
    """
    conn.execute("UPDATE identities SET profile_id = ? WHERE profile_id = ?", (into, other))
    conn.execute("UPDATE profile_events SET profile_id = ? WHERE profile_id = ?", (into, other))
    move_active_days(conn, into, other)
    product_activity.move_profile(conn, into, other)
    onsite.move_exposures(conn, into, other)
    conn.execute("DELETE FROM segment_members WHERE profile_id = ?", (other,))
    # The survivor keeps its own scores until the next fit sees the joined orders.
    conn.execute("DELETE FROM predict_scores WHERE profile_id = ?", (other,))
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


def merged_into(conn: Connection, profile_id: int) -> int | None:
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


def profile_merges(conn: Connection, profile_id: int) -> list[dict[str, Any]]:
    """Merges into this profile, oldest first."""
    keys = ("into", "from", "eventId", "reason", "at")
    return [dict(zip(keys, r, strict=True)) for r in conn.execute(
        "SELECT into_profile, from_profile, event_id, reason, at FROM merges "
        "WHERE into_profile = ? ORDER BY id", (profile_id,))]


def clear_profiles(conn: Connection) -> None:
    """Delete every profile, identity, timeline row, merge, membership and predictive
    score, and the daily aggregates, order copies and attribution credits built from the
    timelines (for rebuild)."""
    for table in ("profile_events", "identities", "segment_members", "merges", "profiles",
                  "active_spans", "track_daily", "order_copies",
                  "predict_scores", "onsite_exposures"):
        conn.execute(f"DELETE FROM {table}")
    product_activity.clear_people(conn)
    credits.clear(conn)
    for table in ("profiles", "merges"):
        conn.execute(conn.dialect.restart_ids(table))


def first_source(conn: Connection) -> int | None:
    """The oldest source (where Kanal's own events are filed), or None."""
    row = conn.execute("SELECT min(id) FROM sources").fetchone()
    return None if row is None or row[0] is None else int(row[0])

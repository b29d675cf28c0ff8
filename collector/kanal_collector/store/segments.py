"""Segment definitions and memberships.

Written by `kanal segments apply` (definitions) and the processor's segments step and
sweeper (members); read by the admin API, journeys and the CLI.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from .chunks import chunks
from .connection import Connection
from .profiles import _dumps


def segment_definitions(conn: Connection) -> list[tuple[str, int, dict[str, Any]]]:
    """(name, version, definition) of every segment, by name."""
    return [(str(n), int(v), json.loads(d)) for n, v, d in conn.execute(
        "SELECT name, version, definition FROM segment_definitions ORDER BY name")]


def put_segment_definitions(conn: Connection, definitions: dict[str, dict[str, Any]],
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


def memberships(conn: Connection, profile_ids: Iterable[int]) -> dict[int, set[str]]:
    """Segments each of these profiles is in."""
    ids = list(set(profile_ids))
    out: dict[int, set[str]] = {pid: set() for pid in ids}
    for chunk in chunks(ids, 500):
        marks = ",".join("?" * len(chunk))
        for seg, pid in conn.execute(
                f"SELECT segment, profile_id FROM segment_members WHERE profile_id IN ({marks})",
                chunk):
            out[int(pid)].add(str(seg))
    return out


def profile_segments(conn: Connection, profile_id: int) -> list[tuple[str, int]]:
    """(segment, entered_at) of one profile."""
    return [(str(s), int(t)) for s, t in conn.execute(
        "SELECT segment, entered_at FROM segment_members WHERE profile_id = ? ORDER BY segment",
        (profile_id,))]


def set_membership(conn: Connection, segment: str, profile_id: int, member: bool,
                   at: int) -> None:
    """Add or remove one membership."""
    if member:
        conn.execute("INSERT INTO segment_members (segment, profile_id, entered_at) "
                     "VALUES (?, ?, ?) ON CONFLICT DO NOTHING", (segment, profile_id, at))
    else:
        conn.execute("DELETE FROM segment_members WHERE segment = ? AND profile_id = ?",
                     (segment, profile_id))


def set_memberships(conn: Connection, changes: Sequence[tuple[str, int, bool]],
                    at: int) -> None:
    """`set_membership` for many (segment, profile_id, member) changes."""
    conn.executemany("INSERT INTO segment_members (segment, profile_id, entered_at) "
                     "VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                     [(s, p, at) for s, p, m in changes if m])
    conn.executemany("DELETE FROM segment_members WHERE segment = ? AND profile_id = ?",
                     [(s, p) for s, p, m in changes if not m])


def segment_members(conn: Connection, segment: str, *, limit: int = 100,
                    after: int = 0) -> list[tuple[int, int]]:
    """(profile_id, entered_at) of a segment's members, by profile id."""
    return [(int(p), int(t)) for p, t in conn.execute(
        "SELECT profile_id, entered_at FROM segment_members WHERE segment = ? "
        "AND profile_id > ? ORDER BY profile_id LIMIT ?", (segment, after, limit))]


def segment_counts(conn: Connection) -> dict[str, int]:
    """Members per segment."""
    return {str(s): int(n) for s, n in conn.execute(
        "SELECT segment, count(*) FROM segment_members GROUP BY segment")}


DAY_MS = 86_400_000


def record_day(conn: Connection, now_ms: int) -> int:
    """Note each segment's member count for today (UTC), unless today's is noted already;
    how many segments were noted. A count over the segment's key range, once a day."""
    day = now_ms // DAY_MS
    return int(conn.execute(
        "INSERT INTO segment_days (segment, day, members, recorded_at) "
        "SELECT d.name, ?, (SELECT count(*) FROM segment_members m WHERE m.segment = d.name), "
        "? FROM segment_definitions d WHERE NOT EXISTS (SELECT 1 FROM segment_days s "
        "WHERE s.segment = d.name AND s.day = ?) "
        "ON CONFLICT (segment, day) DO NOTHING", (day, now_ms, day)).rowcount)


def day_counts(conn: Connection, segment: str, since_day: int) -> list[tuple[int, int]]:
    """(day, members) noted for a segment from `since_day` on, oldest first."""
    return [(int(d), int(n)) for d, n in conn.execute(
        "SELECT day, members FROM segment_days WHERE segment = ? AND day >= ? ORDER BY day",
        (segment, since_day))]


def latest_day_counts(conn: Connection) -> dict[str, tuple[int, int]]:
    """Per segment, the newest noted (day, members)."""
    return {str(s): (int(d), int(n)) for s, d, n in conn.execute(
        "SELECT s.segment, s.day, s.members FROM segment_days s "
        "WHERE s.day = (SELECT max(t.day) FROM segment_days t WHERE t.segment = s.segment)")}


def count_members(conn: Connection, segment: str) -> int:
    """Members of one segment now (a count over its key range)."""
    return int(conn.execute("SELECT count(*) FROM segment_members WHERE segment = ?",
                            (segment,)).fetchone()[0])

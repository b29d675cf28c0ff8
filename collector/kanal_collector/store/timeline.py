"""The profile timeline: which events are on which person's timeline, in time order.

profile_events is written by the processor's profiles step (a merge moves rows, `kanal
forget` deletes them); the admin API, segments, journeys and reports read it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from .chunks import chunks
from .connection import Connection
from .events import _COLUMNS, BODY_COLUMNS, StoredEvent, _stored, read_body


def add_profile_events(conn: Connection, rows: Sequence[tuple[int, int, int]]) -> None:
    """Put (profile_id, timestamp, event_id) on profiles' timelines."""
    conn.executemany(
        "INSERT INTO profile_events (profile_id, timestamp, event_id) VALUES (?,?,?) "
        "ON CONFLICT DO NOTHING",
        sorted(rows),
    )


def timeline(conn: Connection, profile_id: int, *, limit: int = 50,
             before: int | None = None, before_id: int | None = None) -> list[StoredEvent]:
    """A profile's events across origins, newest first (`before`: a timestamp in ms;
    with `before_id`, the page goes on after the event (`before`, `before_id`), so events
    sharing a millisecond are neither skipped nor shown twice)."""
    cols = ", ".join("e." + c.strip() for c in _COLUMNS.split(","))
    at = before if before is not None else 2**62
    rows = conn.execute(
        f"SELECT {cols} FROM profile_events pe JOIN events e ON e.id = pe.event_id "
        "WHERE pe.profile_id = ? AND (pe.timestamp < ? OR (pe.timestamp = ? "
        "AND pe.event_id < ?)) ORDER BY pe.timestamp DESC, pe.event_id DESC LIMIT ?",
        (profile_id, at, at, before_id if before_id is not None else 0, limit),
    ).fetchall()
    return [_stored(r) for r in rows]


# Of the copies of an order (store/orders.py), segments count the one that counts.
_COUNTED = ("AND NOT EXISTS (SELECT 1 FROM order_copies oc WHERE oc.event_id = e.id "
            "AND oc.counted = 0)")
_BODY = ", ".join("e." + c.strip() for c in BODY_COLUMNS.split(","))


def profile_events_since(conn: Connection, profile_id: int, name: str,
                         since: int) -> Iterator[dict[str, Any]]:
    """Bodies (whole: store/events.py `full_body`) of a profile's track events called
    `name` at or after `since` (ms)."""
    for row in conn.execute(
            f"SELECT {_BODY} FROM profile_events pe JOIN events e ON e.id = pe.event_id "
            "WHERE pe.profile_id = ? AND pe.timestamp >= ? AND e.event = ? "
            f"AND e.type = 'track' {_COUNTED}", (profile_id, since, name)):
        yield read_body(row)


def profiles_events_since(conn: Connection, profile_ids: Sequence[int], name: str,
                          since: int) -> dict[int, list[dict[str, Any]]]:
    """`profile_events_since` for many profiles at once: {profile_id: bodies}."""
    out: dict[int, list[dict[str, Any]]] = {pid: [] for pid in profile_ids}
    for chunk in chunks(sorted(set(profile_ids)), 500):
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
                f"SELECT pe.profile_id, {_BODY} FROM profile_events pe "
                "JOIN events e ON e.id = pe.event_id "
                f"WHERE pe.profile_id IN ({marks}) AND pe.timestamp >= ? AND e.event = ? "
                f"AND e.type = 'track' {_COUNTED}", [*chunk, since, name]):
            out[int(row[0])].append(read_body(row[1:]))
    return out


def profiles_event_counts(conn: Connection, profile_ids: Sequence[int], name: str,
                          since: int) -> dict[int, int]:
    """How many bodies `profiles_events_since` would give each profile, counted in the
    database (profiles without one are left out)."""
    out: dict[int, int] = {}
    for chunk in chunks(sorted(set(profile_ids)), 500):
        marks = ",".join("?" * len(chunk))
        out.update((int(pid), int(n)) for pid, n in conn.execute(
            f"SELECT pe.profile_id, COUNT(*) FROM profile_events pe "
            "JOIN events e ON e.id = pe.event_id "
            f"WHERE pe.profile_id IN ({marks}) AND pe.timestamp >= ? AND e.event = ? "
            f"AND e.type = 'track' {_COUNTED} GROUP BY pe.profile_id",
            [*chunk, since, name]))
    return out


def event_profiles(conn: Connection, event_ids: Sequence[int]) -> dict[int, int]:
    """{event id: the profile whose timeline holds it} for these events."""
    out: dict[int, int] = {}
    for chunk in chunks(list(event_ids), 500):
        marks = ",".join("?" * len(chunk))
        out.update((int(e), int(p)) for e, p in conn.execute(
            f"SELECT event_id, profile_id FROM profile_events WHERE event_id IN ({marks})",
            chunk))
    return out


def profiles_of_events(conn: Connection, event_ids: Sequence[int]) -> set[int]:
    """The profiles whose timelines hold any of these events."""
    out: set[int] = set()
    for chunk in chunks(list(event_ids), 500):
        marks = ",".join("?" * len(chunk))
        out.update(int(r[0]) for r in conn.execute(
            f"SELECT DISTINCT profile_id FROM profile_events WHERE event_id IN ({marks})",
            chunk))
    return out

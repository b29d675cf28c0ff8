"""Read-only queries behind `kanal journeys why` (a person's trigger events, send logs).

Nothing here writes: `why` recomputes its answers from the event log, the runs and
the outbox.
"""

from __future__ import annotations

from typing import Any

import orjson

from .connection import Connection
from .events import _COLUMNS, StoredEvent, _stored


def journey_loaded_at(conn: Connection, journey: str) -> list[tuple[int, int]]:
    """(version, created_at) of every stored version of a journey, oldest first."""
    return [(int(v), int(c)) for v, c in conn.execute(
        "SELECT version, created_at FROM journey_versions WHERE journey = ? ORDER BY version",
        (journey,))]


def journey_state(conn: Connection, journey: str) -> tuple[int, bool, int] | None:
    """(current version, enabled, updated_at) of a journey, or None when unknown."""
    row = conn.execute("SELECT version, enabled, updated_at FROM journeys WHERE name = ?",
                       (journey,)).fetchone()
    return None if row is None else (int(row[0]), bool(row[1]), int(row[2]))


def person_events(conn: Connection, profile_id: int, names: list[str],
                  limit: int = 200) -> list[StoredEvent]:
    """A person's track events with one of these names, oldest first (the newest `limit`)."""
    if not names:
        return []
    cols = ", ".join("e." + c.strip() for c in _COLUMNS.split(","))
    marks = ",".join("?" * len(names))
    rows = conn.execute(
        f"SELECT {cols} FROM profile_events pe JOIN events e ON e.id = pe.event_id "
        f"WHERE pe.profile_id = ? AND e.type = 'track' AND e.event IN ({marks}) "
        "ORDER BY e.id DESC LIMIT ?", (profile_id, *names, limit)).fetchall()
    return [_stored(r) for r in reversed(rows)]


def event(conn: Connection, event_id: int) -> StoredEvent | None:
    """One event of the log by id, or None (deleted by `kanal forget`)."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM events WHERE id = ?", (event_id,)).fetchone()
    return None if row is None else _stored(row)


def run_conversion(conn: Connection, run_id: int) -> dict[str, Any] | None:
    """A run's conversion (event, revenue, time), or None."""
    row = conn.execute("SELECT event_id, event, revenue, at FROM journey_conversions "
                       "WHERE run_id = ?", (run_id,)).fetchone()
    if row is None:
        return None
    return {"eventId": row[0], "event": row[1], "revenue": row[2], "at": int(row[3])}


def person_runs(conn: Connection, journey: str, profile_id: int) -> list[dict[str, Any]]:
    """Every run of a person in a journey, oldest first, with trigger event and context.

    Sorted here, not by the statement: asked for that order, SQLite walked the journey's
    index by entry time, every run of everyone in the journey (#18: 23 ms for a person's
    page on a 10M-event database, against a few runs read by the index by person)."""
    keys = ("id", "version", "state", "step", "wait_event", "dedupe", "trigger_event",
            "context", "entered_at", "ended_at", "end_reason", "trusted")
    out = []
    for row in conn.execute(
            f"SELECT {', '.join(keys)} FROM journey_runs WHERE journey = ? AND profile_id = ?",
            (journey, profile_id)):
        item = dict(zip(keys, row, strict=True))
        item["context"] = orjson.loads(item["context"] or "{}")
        out.append(item)
    return sorted(out, key=lambda run: (run["entered_at"], run["id"]))


def person_runs_all(conn: Connection, profile_id: int) -> list[dict[str, Any]]:
    """Every run of a person in any journey, oldest first (id, journey, times, trigger)."""
    keys = ("id", "journey", "trigger_event", "entered_at", "ended_at")
    return [dict(zip(keys, row, strict=True)) for row in conn.execute(
        f"SELECT {', '.join(keys)} FROM journey_runs WHERE profile_id = ? "
        "ORDER BY entered_at, id", (profile_id,))]


def run_timer(conn: Connection, run_id: int) -> dict[str, Any] | None:
    """A run's pending timer (due_at, step, kind), or None."""
    row = conn.execute("SELECT due_at, step, kind FROM journey_timers WHERE run_id = ?",
                       (run_id,)).fetchone()
    return None if row is None else {"dueAt": int(row[0]), "step": row[1], "kind": row[2]}

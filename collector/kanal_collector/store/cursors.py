"""Durable consumer cursors: how far each consumer has read the event log."""

from __future__ import annotations

from .connection import Connection


def get_position(conn: Connection, name: str) -> int:
    """The last event id consumer `name` has applied (0 before the first)."""
    row = conn.execute("SELECT position FROM cursors WHERE name = ?", (name,)).fetchone()
    return int(row[0]) if row else 0


def set_position(conn: Connection, name: str, position: int) -> None:
    """Move consumer `name` to `position`; call inside the transaction of its writes."""
    conn.execute(
        "INSERT INTO cursors (name, position) VALUES (?, ?) "
        "ON CONFLICT(name) DO UPDATE SET position = excluded.position",
        (name, position),
    )

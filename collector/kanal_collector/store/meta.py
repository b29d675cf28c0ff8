"""Small key/value facts about the database (readiness checks, instance id)."""

from __future__ import annotations

from .connection import Connection
from .db import transaction


def put(conn: Connection, key: str, value: str) -> None:
    """Set one value in its own write transaction."""
    with transaction(conn):
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


def get(conn: Connection, key: str) -> str | None:
    """One value, or None."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def put_new(conn: Connection, key: str, value: str) -> str:
    """Set a value unless one is there (in its own write transaction); the value kept."""
    with transaction(conn):
        conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                     "ON CONFLICT (key) DO NOTHING", (key, value))
    found = get(conn, key)
    assert found is not None
    return found

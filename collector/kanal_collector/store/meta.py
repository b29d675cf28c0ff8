"""Small key/value facts about the database (readiness checks, instance id)."""

from __future__ import annotations

import secrets

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


INSTALLATION_KEY = "installation_id"


def installation_id(conn: Connection) -> str:
    """This database's random id (created on first use, inside the caller's write
    transaction): what makes provider idempotency keys and Message-IDs unique per
    installation, so two shops' "journey 1, run 1, step 1" never look alike."""
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                 (INSTALLATION_KEY, secrets.token_hex(16)))
    found = get(conn, INSTALLATION_KEY)
    assert found is not None  # just written, or already there
    return found

"""The lease row that lets one process at a time run the workers of a database."""

from __future__ import annotations

from .connection import Connection
from .db import transaction


def acquire(
    conn: Connection, name: str, owner: str, now: float, ttl: float
) -> bool:
    """Take or renew lease `name` for `owner` until now+ttl; False while another holds it."""
    with transaction(conn):
        row = conn.execute(
            "SELECT owner, expires_at FROM leases WHERE name = ?", (name,)
        ).fetchone()
        if row is not None and row[0] != owner and row[1] > now:
            return False
        conn.execute(
            "INSERT INTO leases (name, owner, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, "
            "expires_at = excluded.expires_at",
            (name, owner, now + ttl),
        )
        return True


def release(conn: Connection, name: str, owner: str) -> None:
    """Give the lease up at once (a clean shutdown), if `owner` still holds it."""
    with transaction(conn):
        conn.execute("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner))


def holder(conn: Connection, name: str) -> tuple[str, float] | None:
    """(owner, expires_at) of lease `name`, or None."""
    row = conn.execute("SELECT owner, expires_at FROM leases WHERE name = ?", (name,)).fetchone()
    return (str(row[0]), float(row[1])) if row else None

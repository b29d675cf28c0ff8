"""Dashboard sign-in sessions: the SHA-256 of the cookie's token, never the token.

A session belongs to the admin key that opened it; a session whose key has been revoked
is no session (and is deleted when looked up).
"""

from __future__ import annotations

from dataclasses import dataclass

from .connection import Connection
from .db import transaction


@dataclass(frozen=True, slots=True)
class DashboardSession:
    """A live session: the admin key it belongs to, its CSRF token and expiry (ms)."""

    token_hash: str
    key_id: int
    csrf: str
    created_at: int
    expires_at: int


def create_session(conn: Connection, token_hash: str, key_id: int, csrf: str,
                   now_ms: int, expires_at: int) -> None:
    """Store a new session (and drop expired ones while the write lock is held)."""
    with transaction(conn):
        conn.execute("DELETE FROM dashboard_sessions WHERE expires_at <= ?", (now_ms,))
        conn.execute(
            "INSERT INTO dashboard_sessions (token_hash, key_id, csrf, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?)", (token_hash, key_id, csrf, now_ms, expires_at))


def live_session(conn: Connection, token_hash: str,
                 now_ms: int) -> DashboardSession | None:
    """The session with this token hash while it is unexpired and its admin key live."""
    row = conn.execute(
        "SELECT s.token_hash, s.key_id, s.csrf, s.created_at, s.expires_at, "
        "k.kind, k.revoked_at FROM dashboard_sessions s "
        "LEFT JOIN keys k ON k.id = s.key_id WHERE s.token_hash = ?", (token_hash,)
    ).fetchone()
    if row is None:
        return None
    expired = int(row[4]) <= now_ms
    if expired or row[5] != "admin" or row[6] is not None:
        delete_session(conn, token_hash)
        return None
    return DashboardSession(str(row[0]), int(row[1]), str(row[2]), int(row[3]), int(row[4]))


def delete_session(conn: Connection, token_hash: str) -> bool:
    """End a session; False when there was none."""
    with transaction(conn):
        cur = conn.execute("DELETE FROM dashboard_sessions WHERE token_hash = ?", (token_hash,))
        return cur.rowcount > 0


def count_sessions(conn: Connection, key_id: int | None = None) -> int:
    """Stored sessions (of one key, or all)."""
    if key_id is None:
        row = conn.execute("SELECT COUNT(*) FROM dashboard_sessions").fetchone()
    else:
        row = conn.execute("SELECT COUNT(*) FROM dashboard_sessions WHERE key_id = ?",
                           (key_id,)).fetchone()
    return int(row[0])

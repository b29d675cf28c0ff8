"""Dashboard sign-in: sessions (the SHA-256 of the cookie's token, never the token) and
failed sign-ins.

A session belongs to the admin key that opened it; a session whose key has been revoked
is no session (and is deleted when looked up). Failed sign-ins are kept per client
address and tried key prefix (dashboard/auth.py says why).
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


def admin_prefixes(conn: Connection) -> set[str]:
    """The display prefixes of the admin keys in force."""
    return {str(r[0]) for r in conn.execute(
        "SELECT prefix FROM keys WHERE kind = 'admin' AND revoked_at IS NULL")}


def add_failure(conn: Connection, address: str, prefix: str, now_ms: int,
                window_ms: int) -> None:
    """Count a failed sign-in (and forget failures older than the window)."""
    with transaction(conn):
        conn.execute("DELETE FROM login_failures WHERE at <= ?", (now_ms - window_ms,))
        conn.execute("INSERT INTO login_failures (address, prefix, at) VALUES (?, ?, ?)",
                     (address, prefix, now_ms))


def recent_failures(conn: Connection, address: str, prefix: str,
                    since_ms: int) -> list[int]:
    """When (ms) this address failed with this prefix since `since_ms`, oldest first."""
    return [int(r[0]) for r in conn.execute(
        "SELECT at FROM login_failures WHERE address = ? AND prefix = ? AND at > ? "
        "ORDER BY at", (address, prefix, since_ms))]


def clear_failures(conn: Connection, *, address: str | None = None,
                   prefix: str | None = None) -> int:
    """Forget failed sign-ins (of one address and/or key prefix, or all); how many."""
    where, args = [], []
    if address is not None:
        where.append("address = ?")
        args.append(address)
    if prefix is not None:
        where.append("prefix = ?")
        args.append(prefix)
    sql = "DELETE FROM login_failures" + (f" WHERE {' AND '.join(where)}" if where else "")
    with transaction(conn):
        return int(conn.execute(sql, args).rowcount)


def failure_buckets(conn: Connection, since_ms: int) -> list[tuple[str, str, int, int]]:
    """(address, prefix, failures, latest ms) of the failures since `since_ms`."""
    return [(str(a), str(p), int(n), int(last)) for a, p, n, last in conn.execute(
        "SELECT address, prefix, count(*), max(at) FROM login_failures WHERE at > ? "
        "GROUP BY address, prefix ORDER BY max(at) DESC", (since_ms,))]

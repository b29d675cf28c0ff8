"""Forgetting people: deleting a person's profile and events, and the suppression
records (keyed hashes of forgotten identities) that ingest and rebuilds honour.

Written by `kanal forget` (and read by ingest's suppression check).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from . import credits, onsite, product_activity
from .activity import move_active_days, recheck_active_days, retract_track_events
from .chunks import chunks
from .connection import Connection
from .identities import profile_identities
from .orders import forget_copies

_SUPPRESSION_SECRET = "suppression_secret"


def delete_profile(conn: Connection, profile_id: int) -> int:
    """Delete a profile, its events and everything derived; returns events deleted."""
    idents = profile_identities(conn, profile_id)
    event_ids = [int(r[0]) for r in conn.execute(
        "SELECT event_id FROM profile_events WHERE profile_id = ?", (profile_id,))]
    # Events of this person the processor has not reached yet are found by their ids.
    users = [v for k, v in idents if k == "user_id"]
    anons = [v for k, v in idents if k == "anonymous_id"]
    for column, values in (("user_id", users), ("anonymous_id", anons)):
        for chunk in chunks(values, 500):
            marks = ",".join("?" * len(chunk))
            event_ids.extend(int(r[0]) for r in conn.execute(
                f"SELECT id FROM events WHERE {column} IN ({marks})", chunk))
    deleted = delete_events(conn, event_ids)
    conn.execute("DELETE FROM profile_events WHERE profile_id = ?", (profile_id,))
    credits.delete_profiles(conn, [profile_id])
    move_active_days(conn, None, profile_id)
    product_activity.delete_profile(conn, profile_id)
    onsite.delete_profile(conn, profile_id, idents)
    conn.execute("DELETE FROM identities WHERE profile_id = ?", (profile_id,))
    conn.execute("DELETE FROM segment_members WHERE profile_id = ?", (profile_id,))
    conn.execute("DELETE FROM predict_scores WHERE profile_id = ?", (profile_id,))
    conn.execute("DELETE FROM merges WHERE into_profile = ? OR from_profile = ?",
                 (profile_id, profile_id))
    conn.execute("DELETE FROM profiles WHERE id = ?", (profile_id,))
    return deleted


def delete_events(conn: Connection, event_ids: Iterable[int]) -> int:
    """Delete events from the log (privacy only); returns how many were deleted.

    The daily aggregates lose what the deleted events added to them.
    """
    ids = sorted(set(event_ids))
    deleted = 0
    days: set[tuple[int, int]] = set()
    for chunk in chunks(ids, 500):
        marks = ",".join("?" * len(chunk))
        days.update(retract_track_events(conn, chunk))
        conn.execute(f"DELETE FROM profile_events WHERE event_id IN ({marks})", chunk)
        forget_copies(conn, chunk)
        deleted += conn.execute(f"DELETE FROM events WHERE id IN ({marks})", chunk).rowcount
    recheck_active_days(conn, days)
    return deleted


def suppression_secret(conn: Connection) -> str:
    """The per-database HMAC key of suppression records (created on first use)."""
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
                 (_SUPPRESSION_SECRET, secrets.token_hex(32)))
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (_SUPPRESSION_SECRET,)).fetchone()
    return str(row[0])


def add_suppressions(conn: Connection, hashes: Iterable[str], at: int,
                     note: str | None = None) -> None:
    """Keep suppression records (keyed hashes of forgotten identities)."""
    conn.executemany(
        "INSERT INTO suppressions (hash, created_at, note) VALUES (?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        [(h, at, note) for h in hashes],
    )


def any_suppressions(conn: Connection) -> bool:
    """True once anyone has been forgotten."""
    return conn.execute("SELECT 1 FROM suppressions LIMIT 1").fetchone() is not None


def suppressed(conn: Connection, hashes: Iterable[str]) -> set[str]:
    """Which of these hashes are suppressed."""
    found: set[str] = set()
    for chunk in chunks(list(set(hashes)), 500):
        marks = ",".join("?" * len(chunk))
        found.update(str(r[0]) for r in conn.execute(
            f"SELECT hash FROM suppressions WHERE hash IN ({marks})", chunk))
    return found


def count_suppressions(conn: Connection) -> int:
    """How many suppression records exist."""
    return int(conn.execute("SELECT count(*) FROM suppressions").fetchone()[0])


def suppression_state(conn: Connection) -> tuple[str | None, set[str]]:
    """(HMAC key, every suppression hash) without writing anything; (None, set()) before
    anyone has been forgotten."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (_SUPPRESSION_SECRET,)).fetchone()
    if row is None:
        return None, set()
    return str(row[0]), {str(r[0]) for r in conn.execute("SELECT hash FROM suppressions")}

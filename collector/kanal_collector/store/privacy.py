"""Forgetting people: deleting a person's profile and events, and the suppression
records (keyed hashes of forgotten identities) that ingest and rebuilds honour.

Written by `kanal forget` (and read by ingest's suppression check).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from . import credits, onsite, product_activity
from .activity import move_active_days, recheck_active_days, retract_track_events
from .chunks import chunks
from .connection import Connection
from .dialect import SQLITE
from .identities import profile_identities
from .orders import forget_copies

_SUPPRESSION_SECRET = "suppression_secret"


@dataclass(frozen=True)
class LoggedEvents:
    """A person's events in the log, read before the write lock (`read_logged_events`)."""

    profile_id: int
    identities: frozenset[tuple[str, str]]
    """The userIds and anonymousIds looked for."""
    upto: int
    """The log's last event id when they were read."""
    event_ids: tuple[int, ...]
    """The ids of the events up to `upto` that name one of them."""


def read_logged_events(conn: Connection, profile_id: int) -> LoggedEvents | None:
    """The events in the log naming a person's userIds and anonymousIds, read outside
    the write transaction that deletes them (SQLite; None on PostgreSQL).

    Finding them reads the whole log (it has no index by userId or anonymousId, which
    would cost every ingest): seconds on a big database, during which SQLite's one write
    lock kept ingest waiting. `delete_profile` then reads only the events logged since.
    SQLite's ids are never reused and are committed in order (one writer), so the two
    reads miss nothing; PostgreSQL's come from a sequence and may commit out of order,
    and its writers don't wait for each other's reads, so it reads them all inside.
    """
    if conn.dialect.name != SQLITE:
        return None
    named = frozenset(_named(profile_identities(conn, profile_id)))
    upto, found = events_naming(conn, named)
    return LoggedEvents(profile_id, named, upto, tuple(found))


def _named(idents: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted((k, v) for k, v in idents if k in ("user_id", "anonymous_id"))


def events_naming(conn: Connection, idents: Iterable[tuple[str, str]], *,
                  after: int = 0) -> tuple[int, list[int]]:
    """(the log's last event id, the ids of the events after `after` up to it whose
    userId or anonymousId is one of these identities')."""
    upto = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])
    named = _named(idents)
    found: list[int] = []
    for column in ("user_id", "anonymous_id"):
        values = [v for k, v in named if k == column]
        for chunk in chunks(values, 500):
            marks = ",".join("?" * len(chunk))
            found.extend(int(r[0]) for r in conn.execute(
                f"SELECT id FROM events WHERE id > ? AND id <= ? AND {column} IN ({marks})",
                (after, upto, *chunk)))
    return upto, found


def delete_profile(conn: Connection, profile_id: int, *,
                   logged: LoggedEvents | None = None) -> int:
    """Delete a profile, its events and everything derived; returns events deleted.

    `logged`: its events read before the write lock (`read_logged_events`); used when
    they are this profile's and its userIds and anonymousIds are still those.
    """
    idents = profile_identities(conn, profile_id)
    event_ids = [int(r[0]) for r in conn.execute(
        "SELECT event_id FROM profile_events WHERE profile_id = ?", (profile_id,))]
    # Events of this person the processor has not reached yet are found by their ids.
    after = 0
    if logged is not None and logged.profile_id == profile_id \
            and logged.identities == frozenset(_named(idents)):
        after = logged.upto
        event_ids.extend(logged.event_ids)
    event_ids.extend(events_naming(conn, idents, after=after)[1])
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

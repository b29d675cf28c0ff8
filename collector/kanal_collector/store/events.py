"""The event log (append-only) and the failed-events table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from .connection import Connection
from .partitions import roll
from .scan import Page, newest


class EventRow(NamedTuple):
    """One event ready to append, in column order."""

    source_id: int
    message_id: str
    type: str
    event: str | None
    user_id: str | None
    anonymous_id: str | None
    origin: str
    key_kind: str
    verified: int
    timestamp: int
    received_at: int
    body: str


class FailedRow(NamedTuple):
    """An authenticated event that could not be accepted, and why."""

    source_id: int | None
    key_kind: str | None
    received_at: int
    reason: str
    body: str


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event read back from the log; `timestamp` and `received_at` are epoch ms."""

    id: int
    source_id: int
    message_id: str
    type: str
    event: str | None
    user_id: str | None
    anonymous_id: str | None
    origin: str
    key_kind: str
    verified: bool
    timestamp: int
    received_at: int
    body: dict[str, Any]


_INSERT = (
    "INSERT INTO events (source_id, message_id, type, event, user_id, "
    "anonymous_id, origin, key_kind, verified, timestamp, received_at, body) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)
# No conflict target: SQLite's unique index (source_id, message_id) and PostgreSQL's
# event_keys trigger (store/partitions.py) both skip a messageId already stored.
_SKIP_STORED = " ON CONFLICT DO NOTHING"
_COLUMNS = (
    "id, source_id, message_id, type, event, user_id, anonymous_id, origin, key_kind, "
    "verified, timestamp, received_at, body"
)


# Rows a multi-row INSERT takes at once (12 parameters each, far below SQLite's limit).
_CHUNK = 100


@lru_cache(maxsize=_CHUNK)
def _insert_rows(n: int) -> str:
    """The INSERT of `n` rows in one statement, in the same order as `n` single ones."""
    return _INSERT + ",(?,?,?,?,?,?,?,?,?,?,?,?)" * (n - 1) + _SKIP_STORED


def append_events(conn: Connection, rows: Sequence[EventRow]) -> int:
    """Append rows; a (source, messageId) already stored is skipped. Returns rows added.

    Up to a hundred rows go in one statement rather than one `executemany` step each:
    less work for SQLite, and one hand-off of the interpreter lock (which other threads
    parsing requests want) instead of one per row. Rows are inserted in order, so of
    two rows with one messageId the first is kept, as with single inserts.

    Call inside a write transaction: `before_append` lets PostgreSQL order the ids of
    concurrent appends (store/postgres.py).
    """
    if not rows:
        return 0
    conn.before_append()
    if conn.dialect.partitioned_events:
        roll(conn, [row.received_at for row in rows])
    if len(rows) == 1:
        return int(conn.execute(_insert_rows(1), rows[0]).rowcount)
    added = 0
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start:start + _CHUNK]
        added += conn.execute(_insert_rows(len(chunk)),
                              [value for row in chunk for value in row]).rowcount
    return added


def _no_nul(text: str) -> str:
    # A refused body may be anything, U+0000 included, which PostgreSQL's text can't
    # hold: it is kept escaped as JSON writes it, on both engines.
    return text.replace("\x00", "\\u0000") if "\x00" in text else text


def append_failed(conn: Connection, rows: Iterable[FailedRow]) -> None:
    """Keep events that failed validation, with the reason (a NUL kept as \\u0000)."""
    conn.executemany(
        "INSERT INTO failed_events (source_id, key_kind, received_at, reason, body) "
        "VALUES (?,?,?,?,?)",
        [r._replace(reason=_no_nul(r.reason), body=_no_nul(r.body)) for r in rows],
    )


def _stored(row: tuple[Any, ...]) -> StoredEvent:
    # Positional, in field order: the processor builds one per event it reads.
    return StoredEvent(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7],
                       row[8], bool(row[9]), row[10], row[11], orjson.loads(row[12]))


def events_after(conn: Connection, position: int, limit: int) -> list[StoredEvent]:
    """Up to `limit` events with an id above `position`, in log order."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM events WHERE id > ? ORDER BY id LIMIT ?", (position, limit)
    ).fetchall()
    return [_stored(r) for r in rows]


def event_id_by_message(conn: Connection, source_id: int, message_id: str) -> int | None:
    """The id of the event stored under (source, messageId), or None.

    PostgreSQL's partitioned log keeps that key in `event_keys` (store/partitions.py).
    """
    table, column = (("event_keys", "event_id") if conn.dialect.partitioned_events
                     else ("events", "id"))
    row = conn.execute(f"SELECT {column} FROM {table} WHERE source_id = ? "
                       f"AND message_id = ?", (source_id, message_id)).fetchone()
    return None if row is None else int(row[0])


def last_event_id(conn: Connection) -> int:
    """The id of the newest event, or 0 for an empty log."""
    row = conn.execute("SELECT max(id) FROM events").fetchone()
    return int(row[0] or 0)


def recent_events(
    conn: Connection, *, limit: int = 50, before: int | None = None,
    source_id: int | None = None,
) -> list[StoredEvent]:
    """The newest events first, optionally older than id `before` and from one source."""
    where, args = [], []
    if before is not None:
        where.append("id < ?")
        args.append(before)
    if source_id is not None:
        where.append("source_id = ?")
        args.append(source_id)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM events {clause} ORDER BY id DESC LIMIT ?", (*args, limit)
    ).fetchall()
    return [_stored(r) for r in rows]


def recent_failed(conn: Connection, *, limit: int = 50) -> list[dict[str, Any]]:
    """The newest failed events first."""
    rows = conn.execute(
        "SELECT id, source_id, key_kind, received_at, reason, body FROM failed_events "
        "ORDER BY id DESC LIMIT ?", (limit,)
    ).fetchall()
    keys = ("id", "source_id", "key_kind", "received_at", "reason", "body")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def page(conn: Connection, *, origin: str | None = None, type_: str | None = None,
         event: str | None = None, source_id: int | None = None,
         before: int | None = None, limit: int = 50, window: int = 5000,
         ) -> tuple[list[StoredEvent], Page]:
    """Events newest first for the dashboard, filtered within a bounded window of the
    log (store/scan.py): no filter costs more than `window` rows a page."""
    filters = [c for c in (("origin = ?", origin), ("type = ?", type_), ("event = ?", event),
                           ("source_id = ?", source_id)) if c[1] is not None]
    found = newest(conn, "events", _COLUMNS, filters=filters, before=before, limit=limit,
                   window=window)
    return [_stored(r) for r in found.rows], found


def failed_page(conn: Connection, *, before: int | None = None,
                limit: int = 50) -> tuple[list[dict[str, Any]], Page]:
    """Failed events (refused at ingest, with the reason) newest first."""
    keys = ("id", "source_id", "key_kind", "received_at", "reason", "body")
    found = newest(conn, "failed_events", ", ".join(keys), before=before, limit=limit)
    return [dict(zip(keys, r, strict=True)) for r in found.rows], found


def count_events(conn: Connection) -> int:
    """How many events the log holds."""
    return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])

"""The event log (append-only) and the failed-events table.

A row's `body` is the message as JSON without the top-level keys its columns already
hold (`slim_body`): messageId, type, event (track) or name (other types), userId,
anonymousId, and timestamp and receivedAt when they are the ISO texts of the epoch-ms
columns. Every reader gets the whole message back (`full_body`); rows stored before
bodies were slimmed still carry those keys and read back unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from ..clock import utc_iso_ms
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
    """An event read back from the log; `timestamp` and `received_at` are epoch ms.

    `body` is the whole message (`full_body`): it always carries the fields its
    columns hold."""

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


@lru_cache(maxsize=4096, typed=True)  # a batch shares its receivedAt
def _iso(ms: int) -> str | None:
    """The ISO text `full_body` restores from epoch ms, or None when there is none."""
    try:
        return utc_iso_ms(ms)
    except (TypeError, ValueError):
        return None


def slim_body(body: Mapping[str, Any], message_id: str, type_: str, event: str | None,
              user_id: str | None, anonymous_id: str | None, timestamp: int,
              received_at: int) -> dict[str, Any]:
    """A shallow copy of a message without the top-level keys its row's columns give
    back exactly (same type, same value), for the `body` column; `full_body` undoes it.

    Those keys: messageId, type, event (a track's name) or name (of every other type),
    userId, anonymousId (the columns are strings), and timestamp and receivedAt when
    they are the ISO text of the column's epoch ms (clock.utc_iso_ms: milliseconds and a
    Z). A key whose value differs in any way stays: an int userId, a timestamp with
    microseconds or a +00:00 offset, a name on a track.
    """
    out = dict(body)
    get = out.get
    # The common case first in each test: a value equal to its column (a str then).
    if get("messageId") == message_id and type(message_id) is str:
        del out["messageId"]
    if get("type") == type_ and type(type_) is str:
        del out["type"]
    if type(event) is str:
        key = "event" if type_ == "track" else "name"
        if get(key) == event:
            del out[key]
    if user_id is not None and get("userId") == user_id and type(user_id) is str:
        del out["userId"]
    if (anonymous_id is not None and get("anonymousId") == anonymous_id
            and type(anonymous_id) is str):
        del out["anonymousId"]
    value = get("timestamp")
    if type(value) is str and type(timestamp) is int and value == _iso(timestamp):
        del out["timestamp"]
    value = get("receivedAt")
    if type(value) is str and type(received_at) is int and value == _iso(received_at):
        del out["receivedAt"]
    return out


_SLIM_KEYS = ("messageId", "type", "event", "name", "userId", "anonymousId", "timestamp",
              "receivedAt")


def left_out_bytes(message: Mapping[str, Any], body: Mapping[str, Any]) -> int:
    """About the bytes the keys `slim_body` left out of `body` take in the JSON of the
    whole `message` (string values: quotes, colon and comma, escapes aside), so that a
    size limit still counts them."""
    size = 0
    for key in _SLIM_KEYS:
        if key not in body:
            value = message.get(key)
            if type(value) is str:  # isascii() is O(1): no encoding for the usual ids
                size += len(key) + 6 + (len(value) if value.isascii()
                                        else len(value.encode()))
    return size


def full_body(body: Any, message_id: str, type_: str, event: str | None,
              user_id: str | None, anonymous_id: str | None, timestamp: int,
              received_at: int) -> Any:
    """A stored body (parsed) with each key `slim_body` leaves out added back from the
    columns when it is absent and its column is not NULL (changed in place, returned).

    A body read back so always carries the fields its columns hold; a body stored whole
    (before slimming, or by a writer that kept a key) is left as it is.
    """
    if type(body) is not dict:
        return body
    if "messageId" not in body and message_id is not None:
        body["messageId"] = message_id
    if "type" not in body and type_ is not None:
        body["type"] = type_
    if event is not None:
        key = "event" if type_ == "track" else "name"
        if key not in body:
            body[key] = event
    if "userId" not in body and user_id is not None:
        body["userId"] = user_id
    if "anonymousId" not in body and anonymous_id is not None:
        body["anonymousId"] = anonymous_id
    if "timestamp" not in body and timestamp is not None:
        iso = _iso(timestamp)
        if iso is not None:
            body["timestamp"] = iso
    if "receivedAt" not in body and received_at is not None:
        iso = _iso(received_at)
        if iso is not None:
            body["receivedAt"] = iso
    return body


def event_row(source_id: int, message_id: str, type_: str, event: str | None,
              user_id: str | None, anonymous_id: str | None, origin: str, key_kind: str,
              verified: int, timestamp: int, received_at: int, body: Mapping[str, Any],
              dumps: Callable[[dict[str, Any]], str]) -> EventRow:
    """The EventRow of a message: its columns, and the message slimmed (`slim_body`)
    and encoded by `dumps` as its body. Kanal's own events are built here; ingest and
    `kanal import` call `slim_body` themselves, to check the size of what they store."""
    return EventRow(source_id, message_id, type_, event, user_id, anonymous_id, origin,
                    key_kind, verified, timestamp, received_at,
                    dumps(slim_body(body, message_id, type_, event, user_id, anonymous_id,
                                    timestamp, received_at)))


BODY_COLUMNS = "message_id, type, event, user_id, anonymous_id, timestamp, received_at, body"
"""The columns `read_body` needs, in its order (prefix each with a table's alias)."""


def read_body(row: Sequence[Any]) -> Any:
    """The whole message of a row of BODY_COLUMNS (`full_body` of the parsed body)."""
    return full_body(orjson.loads(row[7]), row[0], row[1], row[2], row[3], row[4], row[5],
                     row[6])


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
                       row[8], bool(row[9]), row[10], row[11],
                       full_body(orjson.loads(row[12]), row[2], row[3], row[4], row[5],
                                 row[6], row[10], row[11]))


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

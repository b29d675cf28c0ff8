"""SQL behind `kanal journeys simulate`: copy a database, clear what the replay rebuilds,
read the original log in order, find the next due time, and read the results.

Every write here goes to the temporary copy; the original database is only read
(opened read-only).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import orjson

from .connection import Connection, SQLiteConnection, connect_sqlite
from .copy import copy_database as copy_tables
from .db import is_url
from .dialect import SQLITE
from .events import EventRow, event_id_by_message
from .schema import migrate

# What the replay rebuilds from the log (profiles, segments, journeys, the outbox), in
# the copy. Tables a newer schema doesn't have yet are passed over.
DERIVED_TABLES = (
    "profiles", "identities", "profile_events", "merges", "segment_members",
    "journey_runs", "journey_timers", "journey_log", "journey_conversions",
    "journey_assignments", "journey_versions", "journeys", "journey_schedules",
    "outbox", "outbox_log", "tracking_sends", "tracking_links", "event_stats", "leases",
    "active_spans", "track_daily", "journey_refusals", "order_copies",
    "product_activity", "product_orders", "product_alerts", "product_rec_links",
    "product_rec_clicks", "product_rec_conversions", "predict_scores",
)
SEGMENT_EVENTS = ("Segment Entered", "Segment Exited")
"""Kanal's segment events: the replay's segments step writes them again."""
PERSON_CHOICES = ("Unsubscribed", "Subscribed", "Product Back in Stock",
                  "Product Price Dropped", "Lifecycle Stage Changed", "Churn Risk Changed")
"""Kanal's own events that record a choice the person made (the unsubscribe link, the
preferences page), a change of a product they were told about (the catalogue's history
is not replayed), or a change of their predictive scores (fits are not replayed): always
replayed."""
_EVENT_COLUMNS = ("id, source_id, message_id, type, event, user_id, anonymous_id, origin, "
                  "key_kind, verified, timestamp, received_at, body")


def open_readonly(target: str | Path) -> Connection:
    """A read-only connection to a database (FileNotFoundError for a missing file)."""
    if is_url(target):
        from . import postgres

        conn = postgres.connect(str(target))
        conn.execute("SET default_transaction_read_only = on")
        return conn
    path = Path(target)
    if not path.is_file():
        raise FileNotFoundError(f"no database at {path}")
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                           factory=SQLiteConnection)


def copy_database(source: Connection, target: Path) -> None:
    """A consistent copy of a live database in a new SQLite file.

    A SQLite original is copied whole with sqlite3's online backup. A PostgreSQL one is
    copied table by table (store/copy.py, as `kanal db copy` does) into a fresh SQLite
    file, leaving out the log and everything the replay rebuilds from it: the copy then
    costs the size of the settings (sources, keys, segment definitions, suppressions),
    not of the log.
    """
    if source.dialect.name == SQLITE:
        dest = sqlite3.connect(target)
        try:
            cast(sqlite3.Connection, source).backup(dest)
        finally:
            dest.close()
        return
    dest_conn = connect_sqlite(str(target), synchronous="OFF")
    try:
        migrate(dest_conn)
        rebuilt = {*DERIVED_TABLES, "events", "cursors"}
        kept = [t for t in source.dialect.tables(source) if t not in rebuilt]
        for _ in copy_tables(source, dest_conn, tables=kept, verify=False):
            pass
    finally:
        dest_conn.close()


def clear_derived(conn: Connection) -> None:
    """Empty the copy's derived tables, its event log and the processor's cursor.

    The events are appended again, one by one, as the replay reaches them (Kanal's own
    events then fall in between, as they did live). Call inside a transaction.
    """
    present = {str(r[0]) for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    for table in (*DERIVED_TABLES, "events", "cursors"):
        if table in present:
            conn.execute(f"DELETE FROM {table}")


def _filter(since: int) -> tuple[str, list[Any]]:
    marks = ",".join("?" * len(SEGMENT_EVENTS))
    keep = ",".join("?" * len(PERSON_CHOICES))
    return (f"(key_kind != 'kanal' OR coalesce(event, '') IN ({keep}) OR "
            f"(received_at < ? AND coalesce(event, '') NOT IN ({marks})))",
            [*PERSON_CHOICES, since, *SEGMENT_EVENTS])


def first_received(conn: Connection) -> int | None:
    """When the oldest event of a log was received (ms), or None for an empty log."""
    row = conn.execute("SELECT min(received_at) FROM events").fetchone()
    return None if row[0] is None else int(row[0])


def count_source_events(conn: Connection, since: int, until: int) -> int:
    """How many events of the original log the replay reads."""
    clause, args = _filter(since)
    return int(conn.execute(f"SELECT count(*) FROM events WHERE {clause} AND received_at <= ?",
                            (*args, until)).fetchone()[0])


def source_events(conn: Connection, since: int, until: int,
                  page: int = 1000) -> Iterator[tuple[int, EventRow]]:
    """(original id, row) of the events to replay, in log order.

    Kanal's own events from `since` on are left out (the simulated journey writes its
    own deliveries and traits), except the person's choices (unsubscribes); segment
    changes are left out throughout (the replay's segments step writes them again).
    """
    clause, args = _filter(since)
    after = 0
    while True:
        rows = conn.execute(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE id > ? AND {clause} "
            "AND received_at <= ? ORDER BY id LIMIT ?", (after, *args, until, page)).fetchall()
        if not rows:
            return
        for r in rows:
            yield int(r[0]), EventRow(int(r[1]), str(r[2]), str(r[3]), r[4], r[5], r[6],
                                      str(r[7]), str(r[8]), int(r[9]), int(r[10]),
                                      int(r[11]), str(r[12]))
        after = int(rows[-1][0])


def due_parts(conn: Connection,
              channels: Sequence[str]) -> tuple[int | None, int | None]:
    """(earliest timer or schedule, earliest queued send on one of `channels`), in ms."""
    timer = conn.execute("SELECT min(t) FROM (SELECT min(due_at) AS t FROM journey_timers "
                         "UNION ALL SELECT min(next_at) FROM journey_schedules)").fetchone()[0]
    send = None
    if channels:
        marks = ",".join("?" * len(channels))
        send = conn.execute(
            f"SELECT min(next_attempt_at) FROM outbox WHERE state = 'queued' "
            f"AND channel IN ({marks})", list(channels)).fetchone()[0]
    return (None if timer is None else int(timer), None if send is None else int(send))


def next_due(conn: Connection, channels: Sequence[str]) -> int | None:
    """The earliest time (ms) a timer, a schedule or a queued send on one of `channels`
    is due, or None."""
    found = [t for t in due_parts(conn, channels) if t is not None]
    return min(found) if found else None


def unprocessed(conn: Connection, cursor: str) -> bool:
    """True when the log holds events the processor (`cursor`) has not applied yet."""
    return bool(conn.execute(
        "SELECT EXISTS (SELECT 1 FROM events WHERE id > coalesce("
        "(SELECT position FROM cursors WHERE name = ?), 0))", (cursor,)).fetchone()[0])


def event_origins(conn: Connection, event_ids: Sequence[int]) -> dict[int, tuple[int, str]]:
    """{copy event id: (source id, messageId)}: how to find an event in the original."""
    out: dict[int, tuple[int, str]] = {}
    for i in range(0, len(event_ids), 500):
        chunk = list(event_ids[i:i + 500])
        marks = ",".join("?" * len(chunk))
        for eid, sid, mid in conn.execute(
                f"SELECT id, source_id, message_id FROM events WHERE id IN ({marks})", chunk):
            out[int(eid)] = (int(sid), str(mid))
    return out


def runs(conn: Connection, journey: str) -> list[dict[str, Any]]:
    """Every run of the journey in the copy, by entry time."""
    keys = ("id", "profile_id", "state", "trigger_event", "entered_at", "ended_at",
            "end_reason")
    return [dict(zip(keys, r, strict=True)) for r in conn.execute(
        f"SELECT {', '.join(keys)} FROM journey_runs WHERE journey = ? "
        "ORDER BY entered_at, id", (journey,))]


def sends(conn: Connection, journey: str) -> list[dict[str, Any]]:
    """Every outbox row the journey made in the copy, oldest first, with the run id."""
    keys = ("id", "idempotency_key", "profile_id", "message", "channel", "step", "state",
            "reason", "recipient", "created_at", "updated_at", "next_attempt_at", "sent_at")
    out = []
    for r in conn.execute(f"SELECT {', '.join(keys)} FROM outbox WHERE journey = ? "
                          "ORDER BY id", (journey,)):
        row = dict(zip(keys, r, strict=True))
        parts = str(row["idempotency_key"]).rsplit(":", 2)
        row["run_id"] = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
        out.append(row)
    return out


def decisions(conn: Connection,
              outbox_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """{outbox id: the dispatcher's deferred/skipped decisions, in order}."""
    out: dict[int, list[dict[str, Any]]] = {}
    for i in range(0, len(outbox_ids), 500):
        chunk = list(outbox_ids[i:i + 500])
        marks = ",".join("?" * len(chunk))
        for oid, at, what, detail in conn.execute(
                f"SELECT outbox_id, at, what, detail FROM outbox_log "
                f"WHERE outbox_id IN ({marks}) ORDER BY id", chunk):
            out.setdefault(int(oid), []).append(
                {"at": int(at), "what": str(what),
                 "detail": None if detail is None else orjson.loads(detail)})
    return out


def conversions(conn: Connection, journey: str) -> dict[int, dict[str, Any]]:
    """{run id: its conversion} of the journey in the copy."""
    return {int(run_id): {"event": event, "eventId": event_id, "revenue": revenue,
                          "at": int(at)}
            for run_id, event, event_id, revenue, at in conn.execute(
                "SELECT run_id, event, event_id, revenue, at FROM journey_conversions "
                "WHERE journey = ?", (journey,))}


def labels(conn: Connection, profile_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """{profile id: its userId, email and anonymousId} in the copy."""
    out: dict[int, dict[str, Any]] = {pid: {} for pid in profile_ids}
    for i in range(0, len(profile_ids), 500):
        chunk = list(profile_ids[i:i + 500])
        marks = ",".join("?" * len(chunk))
        for pid, kind, value in conn.execute(
                f"SELECT profile_id, kind, value FROM identities WHERE profile_id IN ({marks}) "
                "AND kind IN ('user_id', 'email', 'anonymous_id') ORDER BY kind, value", chunk):
            out[int(pid)].setdefault(str(kind), str(value))
    return out


def event_id_of(conn: Connection, source_id: int, message_id: str) -> int | None:
    """The id of an event of a log by its (source, messageId)."""
    return event_id_by_message(conn, source_id, message_id)

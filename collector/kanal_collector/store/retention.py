"""Retention: `kanal events prune --before DATE`, the one way old events leave the log.

A prune deletes every event received before a moment (`received_at`, epoch ms) from
the log, with what only indexes the log: its messageId keys and its rows in
`profile_events` (the per-person timeline). What the processor derived from those
events stays (profiles, segments, journeys, orders, the daily aggregates and reports,
and the touchpoints later conversions are credited to: a touchpoint's timeline row
stays, with its key, store/credits.py), and so do refused events received since. The
moment becomes the database's prune horizon (`pruned_before`), which `kanal profiles
rebuild` checks: a rebuild replays the log, and a pruned log would rebuild people
without their past.

Only events the processor has applied can go: a prune that would delete an event past
its cursor is refused.

On PostgreSQL a month the moment has passed whole is dropped as a partition
(store/partitions.py): `DETACH PARTITION … CONCURRENTLY` (appends and reads go on),
then its keys and timeline rows, then the table. A month the moment cuts, and the
events from before partitioning, are deleted row by row, as on SQLite, a chunk per
transaction, walking the ids upwards and stopping at the first chunk received wholly
at or after the moment (ids grow with time). A prune that was stopped finishes what it
left when run again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import leases
from .connection import Connection
from .cursors import get_position
from .db import transaction
from .dialect import LOCK_SPACE, PRUNE_LOCK
from .partitions import EARLY, Partition, first_ms, partitions

PRUNED_BEFORE = "events_pruned_before"
"""meta key: events received before this epoch ms were pruned."""
_CHUNK = 5000
_DETACHED = re.compile(r"^events_p\d{6}$")
_DETACH_WAIT = "300s"
"""How long a detach waits for queries that still read the month (lock_timeout)."""

Progress = Callable[[str, int], None]
"""progress(what, events done so far)."""


class PruneRefused(RuntimeError):
    """The prune can't run as asked; nothing was deleted."""


@dataclass
class Pruned:
    """What a prune deleted."""

    events: int = 0
    partitions: list[str] = field(default_factory=list)
    """Months dropped whole (PostgreSQL)."""
    timeline_rows: int = 0
    failed_events: int = 0


def pruned_before(conn: Connection) -> int | None:
    """The prune horizon (epoch ms), or None when the log was never pruned."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (PRUNED_BEFORE,)).fetchone()
    return None if row is None else int(row[0])


def check(conn: Connection, before_ms: int, now_ms: int, cursor: str) -> None:
    """PruneRefused when a prune before `before_ms` must not run now."""
    if before_ms > now_ms:
        raise PruneRefused("the date is in the future: a prune only deletes events "
                           "received before it, and every event is received by now")
    held = leases.holder(conn, leases.WORKERS)
    if held is not None and held[0].startswith("rebuild:") and held[1] > now_ms / 1000:
        raise PruneRefused("`kanal profiles rebuild` is replaying the log; prune after it")
    position = get_position(conn, cursor)
    late = conn.execute("SELECT count(*) FROM events WHERE id > ? AND received_at < ?",
                        (position, before_ms)).fetchone()[0]
    if late:
        raise PruneRefused(f"the processor has not applied {late} of the events received "
                           "before that date yet; let it catch up (is `kanal serve` "
                           "running?) and prune again")


def prune(conn: Connection, before_ms: int, *, now_ms: int, cursor: str = "processor",
          progress: Progress | None = None) -> Pruned:
    """Delete the events received before `before_ms` (see the module docstring)."""
    check(conn, before_ms, now_ms, cursor)
    if conn.dialect.partitioned_events:
        got = conn.execute("SELECT pg_try_advisory_lock(?, ?)",
                           (LOCK_SPACE, PRUNE_LOCK)).fetchone()[0]
        if not got:
            raise PruneRefused("another `kanal events prune` is running on this database")
    try:
        with transaction(conn):
            horizon = max(pruned_before(conn) or 0, before_ms)
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) "
                         "DO UPDATE SET value = excluded.value", (PRUNED_BEFORE, str(horizon)))
        done = Pruned()
        if conn.dialect.partitioned_events:
            _prune_partitions(conn, before_ms, done, progress)
        else:
            _trim(conn, before_ms, None, None, done, progress)
        with transaction(conn):
            done.failed_events = int(conn.execute(
                "DELETE FROM failed_events WHERE received_at < ?", (before_ms,)).rowcount)
        return done
    finally:
        if conn.dialect.partitioned_events:
            conn.execute("SELECT pg_advisory_unlock(?, ?)", (LOCK_SPACE, PRUNE_LOCK))


def _prune_partitions(conn: Connection, before_ms: int, done: Pruned,
                      progress: Progress | None) -> None:
    _finish_interrupted(conn, done, progress)
    for part in partitions(conn):
        ends = part.ends_ms
        if ends is not None and ends <= before_ms:
            _drop(conn, part, done, progress)
        elif part.month is None or first_ms(part.month) < before_ms:
            _trim(conn, before_ms, part.lo, part.hi, done, progress)


def _trim(conn: Connection, before_ms: int, lo: int | None, hi: int | None, done: Pruned,
          progress: Progress | None) -> None:
    """Delete the events of ids [lo, hi) received before `before_ms`, row by row."""
    after = None if lo is None else lo - 1
    while True:
        where, args = ["1 = 1"], []
        if after is not None:
            where.append("id > ?")
            args.append(after)
        if hi is not None:
            where.append("id < ?")
            args.append(hi)
        with transaction(conn):
            rows = conn.execute(f"SELECT id, received_at FROM events WHERE "
                                f"{' AND '.join(where)} ORDER BY id LIMIT ?",
                                (*args, _CHUNK)).fetchall()
            doomed = [int(r[0]) for r in rows if int(r[1]) < before_ms]
            if doomed:
                marks = ",".join("?" * len(doomed))
                done.timeline_rows += int(conn.execute(
                    f"DELETE FROM profile_events WHERE event_id IN ({marks}) "
                    "AND key_id IS NULL", doomed).rowcount)
                done.events += int(conn.execute(
                    f"DELETE FROM events WHERE id IN ({marks})", doomed).rowcount)
        if progress is not None and doomed:
            progress("deleting", done.events)
        if len(rows) < _CHUNK or not doomed:
            return  # the end, or a chunk received wholly at or after the moment
        after = int(rows[-1][0])


def _drop(conn: Connection, part: Partition, done: Pruned,
          progress: Progress | None) -> None:
    """Detach a month (appends and reads go on), then delete its keys and timeline rows
    and drop it."""
    conn.execute(f"SET lock_timeout = '{_DETACH_WAIT}'")
    try:
        conn.execute(f"ALTER TABLE events DETACH PARTITION {part.name} CONCURRENTLY")
    finally:
        conn.execute("RESET lock_timeout")
    _drop_detached(conn, part.name, done, progress)


def _drop_detached(conn: Connection, name: str, done: Pruned,
                   progress: Progress | None) -> None:
    after = -1
    while True:
        with transaction(conn):
            ids = [int(r[0]) for r in conn.execute(
                f"SELECT id FROM {name} WHERE id > ? ORDER BY id LIMIT ?", (after, _CHUNK))]
            if not ids:
                break
            span = (after, ids[-1])
            conn.execute(f"DELETE FROM event_keys k USING {name} e WHERE e.id > ? "
                         f"AND e.id <= ? AND k.source_id = e.source_id "
                         f"AND k.message_id = e.message_id AND k.event_id = e.id", span)
            done.timeline_rows += int(conn.execute(
                "DELETE FROM profile_events WHERE event_id > ? AND event_id <= ? "
                "AND key_id IS NULL", span).rowcount)
        done.events += len(ids)
        after = ids[-1]
        if progress is not None:
            progress(f"dropping {name}", done.events)
    with transaction(conn):
        conn.execute(f"DROP TABLE {name}")
    done.partitions.append(name)


def _finish_interrupted(conn: Connection, done: Pruned, progress: Progress | None) -> None:
    """Finish the months an interrupted prune left detaching or detached."""
    pending: Sequence[Any] = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass('events') AND i.inhdetachpending").fetchall()
    for (name,) in pending:
        conn.execute(f"ALTER TABLE events DETACH PARTITION {name} FINALIZE")
    loose = conn.execute(
        "SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition "
        "AND relnamespace = current_schema()::regnamespace AND relname LIKE 'events\\_p%'"
    ).fetchall()
    for (name,) in loose:
        if _DETACHED.match(str(name)) and name != EARLY:
            _drop_detached(conn, str(name), done, progress)

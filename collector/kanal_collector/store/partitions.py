"""PostgreSQL's event log, partitioned by month: old months are dropped, not deleted.

On PostgreSQL `events` is partitioned by month, and the month is written in the id:
an event logged in June 2025 gets an id from 2025060000000000 up (YYYYMM × 10¹⁰, then
one a time), and partition `events_p202506` holds ids [202506·10¹⁰, 202507·10¹⁰).
The month is the UTC month of `received_at` (when Kanal stored the event; never the
client's `timestamp`, which may be years old for an import). Partitioning by id rather
than by `received_at` keeps every lookup by id (the timelines' and reports' joins of
`profile_events` to `events`, the processor's `id > cursor`) inside one partition,
where partitions by `received_at` would make each such lookup search every month.

The id counter moves to a new month the first time an event of that month is appended
(`roll`, inside the appending transaction, which holds the append lock that orders all
appends of every node: store/postgres.py). So every event of partition `events_pYYYYMM`
was received before the month after YYYYMM began, and `kanal events prune`
(store/retention.py) drops a month wholly before its date in a moment, leaving nothing
for VACUUM. (Several nodes with clocks a little apart may log an event received in the
last moments of a month into the next one; a month would only run out of ids after
10¹⁰ events, and its ids would then carry on into the next month's range.)

`events_p0` holds the ids below the first month (events stored before partitioning, or
copied from a SQLite file by `kanal db copy`).

A unique index on a partitioned table must include the partition key, so the messageId
dedupe can't be a unique index on `events` here. It lives in `event_keys` (source,
messageId → event id), kept by two triggers on `events`: before an insert the key is
claimed (`ON CONFLICT DO NOTHING`), and a row whose key is taken is not inserted (the
trigger returns NULL, so the INSERT counts it as skipped, as SQLite's unique index
does); after a delete (`kanal forget`), the key goes with the row. The SQL that appends
events is the same on both engines.

Partitions are made ahead of need: the lease holder makes the current and the next two
months' once an hour (`ensure_ahead`), and `roll` makes a missing month on the spot, so
an append never fails for want of one. On SQLite every function here does nothing.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .connection import Connection

MONTH_IDS = 10_000_000_000
"""Ids per month: an id is YYYYMM × MONTH_IDS plus its number in the month."""
EARLY = "events_p0"
"""The partition of the ids below the first month's."""
_NAME = re.compile(r"^events_p(\d{6})$")
_AHEAD_MONTHS = 2
_FIRST_MONTH = 100_001
"""Ids below this month's are the early partition's, whatever their number."""


@dataclass(frozen=True)
class Partition:
    """One partition of `events`: its ids [lo, hi); `month` YYYYMM, None for the early one."""

    name: str
    month: int | None
    lo: int | None
    hi: int

    @property
    def ends_ms(self) -> int | None:
        """When its month ends (epoch ms): every event in it was received before."""
        return None if self.month is None else first_ms(next_month(self.month))


@dataclass
class _Seen:
    """What one connection knows of the id counter, so most appends look nothing up."""

    sequence: str
    until_ms: int
    """Appends received before this need no roll (the counter is in their month or later)."""


_seen: weakref.WeakKeyDictionary[Any, _Seen] = weakref.WeakKeyDictionary()


def month_of(ms: int) -> int:
    """YYYYMM of the UTC month holding epoch-ms `ms`."""
    day = datetime.fromtimestamp(ms / 1000, UTC)
    return day.year * 100 + day.month


def next_month(month: int) -> int:
    """The YYYYMM after `month`."""
    year, mm = divmod(month, 100)
    return (year + 1) * 100 + 1 if mm >= 12 else month + 1


def first_ms(month: int) -> int:
    """The first epoch ms of YYYYMM `month` (UTC)."""
    year, mm = divmod(month, 100)
    return int(datetime(year, mm, 1, tzinfo=UTC).timestamp() * 1000)


def month_of_id(event_id: int) -> int:
    """The month whose partition holds id `event_id` (an id past a month's 10¹⁰ falls in
    the range up to the next month's, which is still that month's partition)."""
    year, mm = divmod(event_id // MONTH_IDS, 100)
    if mm == 0:
        return (year - 1) * 100 + 12
    return year * 100 + min(mm, 12)


def partitions(conn: Connection) -> list[Partition]:
    """The partitions of `events`, lowest ids first (none on SQLite)."""
    if not conn.dialect.partitioned_events:
        return []
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass('events')").fetchall()
    found: list[Partition] = []
    early_hi = None
    for (name,) in rows:
        m = _NAME.match(str(name))
        if m is not None:
            month = int(m.group(1))
            found.append(Partition(str(name), month, month * MONTH_IDS,
                                   next_month(month) * MONTH_IDS))
        elif name == EARLY:
            early_hi = _early_bound(conn)
    found.sort(key=lambda p: p.hi)
    if early_hi is not None:
        found.insert(0, Partition(EARLY, None, None, early_hi))
    return found


def _early_bound(conn: Connection) -> int:
    bound = conn.execute("SELECT pg_get_expr(relpartbound, oid) FROM pg_class "
                         "WHERE oid = to_regclass(?)", (EARLY,)).fetchone()[0]
    m = re.search(r"TO \('?(-?\d+)'?\)", str(bound))
    if m is None:
        raise RuntimeError(f"unexpected bound of {EARLY}: {bound}")
    return int(m.group(1))


def ensure(conn: Connection, months: Iterable[int]) -> list[str]:
    """Make the partitions of these months (YYYYMM) that are missing; their names.

    Runs in the caller's transaction, if any. Each is made as a table of its own and
    then attached: ATTACH PARTITION takes a lock that lets appends and reads of `events`
    go on, where CREATE TABLE … PARTITION OF would stop them for a moment.
    """
    if not conn.dialect.partitioned_events:
        return []
    have = partitions(conn)
    names = {p.name for p in have}
    floor = have[0].hi if have and have[0].month is None else 0
    made = []
    for month in sorted(set(months)):
        name = f"events_p{month:06d}"
        if name in names or next_month(month) * MONTH_IDS <= floor:
            continue  # there, or ids the early partition already holds
        lo = max(month * MONTH_IDS, floor)
        conn.execute(f"CREATE TABLE {name} (LIKE events)")
        conn.execute(f"ALTER TABLE events ATTACH PARTITION {name} "
                     f"FOR VALUES FROM ({lo}) TO ({next_month(month) * MONTH_IDS})")
        made.append(name)
    return made


def ensure_ahead(conn: Connection, now_ms: int) -> list[str]:
    """Make this month's partition and the next two months' (the lease holder's chore)."""
    month = month_of(now_ms)
    ahead = [month]
    for _ in range(_AHEAD_MONTHS):
        ahead.append(next_month(ahead[-1]))
    return ensure(conn, ahead)


def cover_ids(conn: Connection, ids: Iterable[int]) -> None:
    """Make the partitions explicit ids go to (`kanal db copy` keeps the source's ids)."""
    if conn.dialect.partitioned_events:
        ensure(conn, {month_of_id(i) for i in ids})


def roll(conn: Connection, received: Iterable[int]) -> None:
    """Move the id counter to the month of the newest of these received_at times, if it
    is behind, before they are appended (inside the appending transaction).

    Most calls compare one number: the connection remembers until when its last look
    at the counter holds.
    """
    if not conn.dialect.partitioned_events:
        return
    newest = max(received, default=None)
    if newest is None:
        return
    seen = _seen.get(conn)
    if seen is not None and newest < seen.until_ms:
        return
    sequence = seen.sequence if seen is not None else str(conn.execute(
        "SELECT pg_get_serial_sequence('events', 'id')").fetchone()[0])
    last, called = conn.execute(f"SELECT last_value, is_called FROM {sequence}").fetchone()
    following = int(last) + 1 if called else int(last)
    month = month_of(newest)
    at = month_of_id(following) if following >= _FIRST_MONTH * MONTH_IDS else 0
    if at < month:
        ensure(conn, [month])
        conn.execute("SELECT setval(?, ?, false)", (sequence, month * MONTH_IDS))
        at = month
    _seen[conn] = _Seen(sequence, first_ms(next_month(at)))


def forget_seen(conn: Connection) -> None:
    """Drop what `roll` remembers of `conn` (tests move clocks and counters about)."""
    _seen.pop(conn, None)


def partition_log(conn: Connection, now_ms: int) -> None:
    """Turn an unpartitioned PostgreSQL `events` into the partitioned log (migration 19).

    The rows move into `events_p0` (they keep their ids: everything refers to events by
    id), the id counter carries on past every id handed out until the first append
    moves it to its month, and the messageId keys are made by the insert trigger as the
    rows go in.
    """
    dialect = conn.dialect
    kind = conn.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass('events')"
                        ).fetchone()
    if kind is not None and kind[0] == "p":
        return  # partitioned already (a test put the version number back)
    top = dialect.next_id(conn, "events") or 1
    conn.execute("ALTER TABLE events RENAME TO events_unpartitioned")
    conn.execute("ALTER INDEX events_pkey RENAME TO events_unpartitioned_pkey")
    conn.execute("ALTER INDEX events_message RENAME TO events_unpartitioned_message")
    conn.execute("CREATE TABLE events (LIKE events_unpartitioned INCLUDING DEFAULTS) "
                 "PARTITION BY RANGE (id)")
    conn.execute("ALTER TABLE events ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY")
    conn.execute("ALTER TABLE events ADD PRIMARY KEY (id)")
    conn.execute("ALTER TABLE events ADD FOREIGN KEY (source_id) REFERENCES sources(id)")
    conn.execute(dialect.ddl(
        """CREATE TABLE event_keys (
            source_id {INT} NOT NULL, message_id {TEXT} NOT NULL, event_id {INT} NOT NULL,
            PRIMARY KEY (source_id, message_id)
        )"""))
    for statement in _TRIGGERS:
        conn.execute(statement)
    month = month_of(now_ms)
    conn.execute(f"CREATE TABLE {EARLY} (LIKE events)")
    conn.execute(f"ALTER TABLE events ATTACH PARTITION {EARLY} "
                 f"FOR VALUES FROM (MINVALUE) TO ({month * MONTH_IDS})")
    ensure_ahead(conn, now_ms)
    columns = ", ".join(dialect.columns(conn, "events_unpartitioned"))
    conn.execute(f"INSERT INTO events ({columns}) SELECT {columns} "
                 f"FROM events_unpartitioned ORDER BY id")
    conn.execute("DROP TABLE events_unpartitioned")
    seq = str(conn.execute("SELECT pg_get_serial_sequence('events', 'id')").fetchone()[0])
    if seq.rsplit(".", 1)[-1] != "events_id_seq":
        conn.execute(f"ALTER SEQUENCE {seq} RENAME TO events_id_seq")
    dialect.set_next_id(conn, "events", top)


_TRIGGERS: Sequence[str] = (
    """CREATE FUNCTION kanal_event_key_claim() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO event_keys (source_id, message_id, event_id)
        VALUES (NEW.source_id, NEW.message_id, NEW.id) ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        RETURN NEW;
    END $$""",
    """CREATE FUNCTION kanal_event_key_drop() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM event_keys WHERE source_id = OLD.source_id
            AND message_id = OLD.message_id AND event_id = OLD.id;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER events_key_claim BEFORE INSERT ON events "
    "FOR EACH ROW EXECUTE FUNCTION kanal_event_key_claim()",
    "CREATE TRIGGER events_key_drop AFTER DELETE ON events "
    "FOR EACH ROW EXECUTE FUNCTION kanal_event_key_drop()",
)
"""The triggers that keep `event_keys` (see the module docstring)."""

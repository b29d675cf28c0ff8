"""The storage interface: what the rest of Kanal holds when it holds "a connection".

Everything outside `store/` passes a `Connection` along and calls store functions with
it; only `store/` runs SQL on it. The interface is the small part of Python's DB-API
that Kanal uses: `execute` / `executemany` returning a cursor to fetch from, iterate
over and read `rowcount` of (never `lastrowid`: inserts say `RETURNING id`),
`in_transaction`, `close`, plus three things of Kanal's own:

- `dialect`: what differs between engines (store/dialect.py);
- `bulk_insert(table, columns, rows)`: a bulk load (PostgreSQL's COPY), for
  `kanal db copy`;
- `stream(sql, params)`: the rows of a large read without holding them all at once
  (a sqlite3 cursor already steps through its result; PostgreSQL needs a server-side
  cursor);
- `begin(spin=…, writer=…, claim=…)`: open a write transaction (store/db.py's
  `transaction` is the one caller), and `commit()` / `rollback()`;
- `before_append()`: called by the event log before it inserts into `events`;
- `hint(topic)`: tell other processes, once this transaction commits, that there is
  new work of a kind (PostgreSQL's NOTIFY; nothing on SQLite, where one process runs
  the workers). A hint is only a wake-up: every worker also polls.

SQLite's connection *is* such a connection: `SQLiteConnection` subclasses
`sqlite3.Connection` (built by `sqlite3.connect(factory=…)`), so `execute` and
`executemany` are sqlite3's own C methods, with no wrapper on the hot paths; only the
once-per-transaction methods are Python. PostgreSQL's is `store.postgres.PGConnection`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from .dialect import SQLITE_DIALECT, Dialect

Params = Sequence[Any]


class Cursor(Protocol):
    """The result of one statement."""

    @property
    def rowcount(self) -> int:
        """Rows the statement changed (INSERT, UPDATE, DELETE)."""
        ...

    def fetchone(self) -> Any:
        """The next row as a tuple, or None."""
        ...

    def fetchall(self) -> list[Any]:
        """Every remaining row as tuples."""
        ...

    def __iter__(self) -> Iterator[Any]:
        """The remaining rows as tuples."""
        ...


class Connection(Protocol):
    """One connection to a Kanal database, of either engine."""

    dialect: Dialect

    @property
    def in_transaction(self) -> bool:
        """True inside a transaction opened by `begin`."""
        ...

    def execute(self, sql: str, parameters: Params = ..., /) -> Any:
        """Run one statement with `?` markers; returns a Cursor."""
        ...

    def executemany(self, sql: str, seq_of_parameters: Iterable[Params], /) -> Any:
        """Run one statement once per parameter row."""
        ...

    def stream(self, sql: str, parameters: Params = ..., /) -> Iterator[Any]:
        """The rows of a large read, fetched a batch at a time rather than all at once."""
        ...

    def bulk_insert(self, table: str, columns: Sequence[str],
                    rows: Iterable[Sequence[Any]]) -> None:
        """Insert many rows into `table` the engine's fastest way (no conflict handling)."""
        ...

    def begin(self, *, spin: float | None = None, writer: bool = True,
              claim: bool = False) -> None:
        """Open a write transaction (store.db.transaction is the only caller)."""
        ...

    def commit(self) -> None:
        """Commit the open transaction."""
        ...

    def rollback(self) -> None:
        """Roll the open transaction back."""
        ...

    def before_append(self) -> None:
        """Called inside a transaction before its first INSERT into `events`."""
        ...

    def hint(self, topic: str) -> None:
        """Wake other processes' workers of `topic` when this transaction commits."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


class EngineError(Exception):
    """An error a PostgreSQL connection raised (the driver's error is its __cause__).

    SQLite's own errors stay `sqlite3.Error`: `DB_ERRORS` names both.
    """

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


EVENTS = "events"
"""Hint topic: events were appended (the processor has work)."""
OUTBOX = "outbox"
"""Hint topic: outbox rows were queued (the dispatchers have work)."""
TOPICS = (EVENTS, OUTBOX)

DB_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, EngineError)
"""What a database of either engine raises when a statement fails: `except DB_ERRORS`."""


# How `begin(spin=…)` sleeps between tries for SQLite's write lock: from 0.1 ms,
# doubling, at most 2 ms.
_FIRST_PAUSE = 0.0001
_MAX_PAUSE = 0.002


class SQLiteConnection(sqlite3.Connection):
    """sqlite3's connection with Kanal's transaction methods (execute is sqlite3's own;
    so are commit and rollback, which in autocommit mode end what BEGIN opened)."""

    dialect: Dialect = SQLITE_DIALECT

    def begin(self, *, spin: float | None = None, writer: bool = True,
              claim: bool = False) -> None:
        """BEGIN IMMEDIATE: take SQLite's one write lock first.

        sqlite3's implicit transactions start with a deferred BEGIN, which can fail with
        SQLITE_BUSY halfway through when a read lock must be upgraded; taking the write
        lock first makes the busy timeout apply. `writer` and `claim` make no difference:
        every SQLite write transaction holds the one lock.

        `spin` (seconds) waits for the write lock in short steps instead, for a connection
        whose busy timeout is 0: SQLite's busy handler sleeps 1, 2, 5, 10, 15 … ms between
        tries, and while the workers hold the lock for a millisecond or so those long
        sleeps stalled ingest's group commit several times longer than the lock was held.
        """
        if spin is None:
            self.execute("BEGIN IMMEDIATE")
            return
        deadline = time.monotonic() + spin
        pause = _FIRST_PAUSE
        while True:
            try:
                self.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                code = getattr(exc, "sqlite_errorcode", None)
                if code is None or code & 0xFF != sqlite3.SQLITE_BUSY:
                    raise
                if time.monotonic() >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, _MAX_PAUSE)

    def stream(self, sql: str, parameters: Params = (), /) -> Iterator[Any]:
        """sqlite3's cursor: it already steps through the result as it is read."""
        return iter(self.execute(sql, parameters))

    def bulk_insert(self, table: str, columns: Sequence[str],
                    rows: Iterable[Sequence[Any]]) -> None:
        """One prepared INSERT, stepped once per row."""
        marks = ",".join("?" * len(columns))
        self.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def before_append(self) -> None:
        """Nothing: the write lock of BEGIN IMMEDIATE already orders every append."""

    def hint(self, topic: str) -> None:
        """Nothing: on SQLite the workers run in one process, woken in that process."""


WAL_KEEP_BYTES = 64 * 1024 * 1024
"""The most of the `-wal` file SQLite keeps on disk once the WAL starts over
(`journal_size_limit`; by default it keeps the file at its biggest)."""


def _wal_mode(conn: sqlite3.Connection, busy_timeout: float) -> None:
    """Put the file in WAL mode, waiting up to `busy_timeout` seconds for a lock.

    SQLite answers a journal mode change "database is locked" at once, without its busy
    handler, while another connection writes a file not yet in WAL mode: two processes
    (or threads) opening a new database together, one of them already migrating it.
    """
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                conn.close()
                raise
            time.sleep(0.01)


def connect_sqlite(path: str, *, synchronous: str = "FULL", busy_timeout: float = 10.0,
                   autocheckpoint: int | None = None) -> SQLiteConnection:
    """Open a SQLite file in autocommit mode with Kanal's pragmas (WAL, foreign keys);
    `autocheckpoint`: the WAL pages past which its commits checkpoint (None: SQLite's
    1,000)."""
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None,
                           check_same_thread=False, factory=SQLiteConnection)
    _wal_mode(conn, busy_timeout)
    conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute(f"PRAGMA journal_size_limit={WAL_KEEP_BYTES}")
    if autocheckpoint is not None:
        conn.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint)}")
    return conn

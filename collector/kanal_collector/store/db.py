"""Connections, pragmas and the write-transaction helper."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import StorageError


def connect(
    path: str | Path,
    *,
    synchronous: str = "FULL",
    busy_timeout: float = 10.0,
) -> sqlite3.Connection:
    """Open a connection in autocommit mode with Kanal's pragmas (WAL, foreign keys)."""
    conn = sqlite3.connect(
        str(path), timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA temp_store=MEMORY")
    return conn


# How `transaction(spin=…)` sleeps between tries for the write lock: from 0.1 ms,
# doubling, at most 2 ms.
_FIRST_PAUSE = 0.0001
_MAX_PAUSE = 0.002


def _begin_spinning(conn: sqlite3.Connection, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pause = _FIRST_PAUSE
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            code = getattr(exc, "sqlite_errorcode", None)
            if code is None or code & 0xFF != sqlite3.SQLITE_BUSY:
                raise
            if time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, _MAX_PAUSE)


@contextmanager
def transaction(
    conn: sqlite3.Connection, *, spin: float | None = None
) -> Iterator[sqlite3.Connection]:
    """One write transaction: BEGIN IMMEDIATE, then COMMIT, or ROLLBACK on any error.

    sqlite-utils' own atomic() and sqlite3's implicit transactions start with a
    deferred BEGIN, which can fail with SQLITE_BUSY halfway through when a read
    lock must be upgraded; taking the write lock first makes the busy timeout apply.

    `spin` (seconds) waits for the write lock in short steps instead, for a connection
    whose busy timeout is 0: SQLite's busy handler sleeps 1, 2, 5, 10, 15 … ms between
    tries, and while the workers hold the lock for a millisecond or so those long sleeps
    stalled ingest's group commit several times longer than the lock was held.
    """
    if spin is None:
        conn.execute("BEGIN IMMEDIATE")
    else:
        _begin_spinning(conn, spin)
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


class Database:
    """One database file: its settings and one connection per thread."""

    def __init__(
        self, path: str | Path, *, synchronous: str = "FULL", busy_timeout: float = 10.0
    ) -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def connect(self) -> sqlite3.Connection:
        """A new connection of this database (the caller closes it)."""
        try:
            return connect(self.path, synchronous=self.synchronous,
                           busy_timeout=self.busy_timeout)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open {self.path}: {exc}") from exc

    def connect_spinning(self) -> sqlite3.Connection:
        """A new connection for `transaction(conn, spin=…)`: no busy handler of its own."""
        conn = self.connect()
        conn.execute("PRAGMA busy_timeout=0")
        return conn

    def conn(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on this thread's connection."""
        with transaction(self.conn()) as conn:
            yield conn

    def close(self) -> None:
        """Close every connection this object opened."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()

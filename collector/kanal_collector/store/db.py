"""Databases, connections and the one write-transaction helper, for either engine.

`Database(target)` is a SQLite file path, or a `postgresql://` URL (store/postgres.py).
Everything above the store holds a `Database` and the `Connection`s it hands out
(store/connection.py) and never learns which engine is underneath.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import StorageError
from .connection import DB_ERRORS, Connection, connect_sqlite
from .dialect import POSTGRESQL, SQLITE

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

_URL_SCHEMES = ("postgresql://", "postgres://")

REQUEST_CACHE_KIB = 1024
"""The page cache of each request thread's SQLite connection in `kanal serve` (KiB).

SQLite's default is 2 MiB a connection, and `kanal serve` keeps one connection per
request thread (16 by default): on a big database every thread's cache fills from the
pages it served and stays allocated, 32 MB in all. Across requests a request cache is
worth little anyway: in WAL mode a connection drops its whole cache when another
connection has written since its last read, which ingest and the workers do all the
time. Within one query 1 MiB still holds the upper levels of the B-trees it walks.
Measured at 1M events (#18): every dashboard page's p50 the same at 1 MiB (and at
512 KiB) as at 2 MiB, and about 13 MB (22 MB) less resident after loading all of them.
"""


def is_url(target: str | Path) -> bool:
    """True when `target` names a PostgreSQL database rather than a SQLite file."""
    return isinstance(target, str) and target.startswith(_URL_SCHEMES)


def masked(target: str | Path) -> str:
    """`target` fit to print: a URL's password replaced by ***."""
    text = str(target)
    if not is_url(text):
        return text
    parts = urlsplit(text)
    if parts.password is None:
        return text
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def same_database(a: str | Path, b: str | Path) -> bool:
    """True when two targets name the same database (as far as their text tells)."""
    if is_url(a) or is_url(b):
        return masked(a) == masked(b)
    return Path(a).resolve() == Path(b).resolve()


def missing_file(target: str | Path) -> bool:
    """True when `target` is a SQLite file that doesn't exist (a URL never is)."""
    return not is_url(target) and not Path(target).is_file()


def engine_of(target: str | Path) -> str:
    """"sqlite" or "postgresql"."""
    return POSTGRESQL if is_url(target) else SQLITE


@contextmanager
def transaction(conn: Connection, *, spin: float | None = None,
                writer: bool = True, claim: bool = False) -> Iterator[Connection]:
    """One write transaction: begin, then COMMIT, or ROLLBACK on any error.

    On SQLite this is BEGIN IMMEDIATE (the one write lock, taken first); on PostgreSQL
    BEGIN and the writer lock (store/postgres.py). `writer=False` is for a transaction
    that only appends events (ingest's group commit): on PostgreSQL it takes the append
    lock instead and runs beside the workers, ordered among appends. `claim=True` is for
    a transaction that only claims rows (`FOR UPDATE SKIP LOCKED`, dialect.skip_locked)
    and marks them as its own: on PostgreSQL it takes no advisory lock at all, so the
    nodes' dispatchers claim side by side. `spin` (seconds) is how long a SQLite
    connection without a busy timeout tries for the lock in short steps.
    """
    conn.begin(spin=spin, writer=writer, claim=claim)
    try:
        yield conn
    except BaseException:
        try:
            conn.rollback()
        except DB_ERRORS:
            pass  # a broken connection: the original error says more
        raise
    else:
        conn.commit()


class Database:
    """One Kanal database: its settings, and connections to it.

    `conn()` is the calling thread's connection (a request thread's, the CLI's);
    `connect()` opens one of the caller's own (workers, the ingest writer).
    `thread_cache_kib` sets the SQLite page cache of the threads' connections (`conn()`;
    `kanal serve` gives REQUEST_CACHE_KIB); None keeps SQLite's default.
    `autocheckpoint`: the WAL pages past which a SQLite connection checkpoints in its own
    commit (`kanal serve` leaves that to the processor's thread: store/checkpoints.py);
    None keeps SQLite's 1,000.
    On PostgreSQL, `conn()` checks a connection out of a pool and `release()` gives it
    back (at the end of every request); on SQLite a thread keeps its connection.
    """

    def __init__(
        self, target: str | Path, *, synchronous: str = "FULL", busy_timeout: float = 10.0,
        pool_size: int = 10, thread_cache_kib: int | None = None,
        autocheckpoint: int | None = None,
    ) -> None:
        self.engine = engine_of(target)
        self.target = str(target)
        self.synchronous = synchronous
        self.busy_timeout = busy_timeout
        self.pool_size = pool_size
        self.thread_cache_kib = thread_cache_kib
        self.autocheckpoint = autocheckpoint
        self._local = threading.local()
        self._all: list[Connection] = []
        self._lock = threading.Lock()
        self._pool: ConnectionPool[Any] | None = None
        self._own: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._stops: list[Callable[[], None]] = []

    @property
    def path(self) -> Path:
        """The SQLite file (ValueError on PostgreSQL)."""
        if self.engine != SQLITE:
            raise ValueError(f"{self.display} is not a SQLite file")
        return Path(self.target)

    @property
    def display(self) -> str:
        """The path or URL, its password masked."""
        return masked(self.target)

    def connect(self) -> Connection:
        """A new connection of this database (the caller closes it; `close` closes what
        a caller left open)."""
        conn: Connection
        try:
            if self.engine == SQLITE:
                conn = connect_sqlite(self.target, synchronous=self.synchronous,
                                      busy_timeout=self.busy_timeout,
                                      autocheckpoint=self.autocheckpoint)
            else:
                from . import postgres

                conn = postgres.connect(self.target, lock_timeout=self.busy_timeout)
        except DB_ERRORS as exc:
            raise StorageError(f"cannot open {self.display}: {exc}") from exc
        self._own.add(conn)
        return conn

    def connect_spinning(self) -> Connection:
        """A new connection for `transaction(conn, spin=…)`: no busy handler of its own."""
        conn = self.connect()
        if self.engine == SQLITE:
            conn.execute("PRAGMA busy_timeout=0")
        return conn

    def conn(self) -> Connection:
        """This thread's connection, opened (or checked out of the pool) on first use."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._checkout() if self.engine == POSTGRESQL else self.connect()
            if self.engine == SQLITE and self.thread_cache_kib is not None:
                conn.execute(f"PRAGMA cache_size = -{int(self.thread_cache_kib)}")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _checkout(self) -> Connection:
        from . import postgres

        with self._lock:
            if self._pool is None:
                try:
                    self._pool = postgres.make_pool(self.target, max_size=self.pool_size,
                                                    lock_timeout=self.busy_timeout)
                except DB_ERRORS as exc:
                    raise StorageError(f"cannot open {self.display}: {exc}") from exc
            pool = self._pool
        try:
            raw = pool.getconn()
        except Exception as exc:  # the pool's timeout: the server is down or full
            raise StorageError(f"cannot open {self.display}: {exc}") from exc
        return postgres.pool_connection(raw)

    def release(self) -> None:
        """Give this thread's pooled connection back (PostgreSQL; nothing on SQLite)."""
        if self.engine == SQLITE or self._pool is None:
            return
        conn: Any = getattr(self._local, "conn", None)
        if conn is None or not getattr(conn, "pooled", False):
            return
        self._local.conn = None
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        self._pool.putconn(conn.raw)  # rolls back what a failed request left open

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction on this thread's connection."""
        with transaction(self.conn()) as conn:
            yield conn

    def on_close(self, stop: Callable[[], None]) -> Callable[[], None]:
        """Call `stop` first thing in `close` (a thread with a connection of its own: it
        stops and closes it itself); returns what undoes this."""
        with self._lock:
            self._stops.append(stop)

        def forget() -> None:
            with self._lock:
                if stop in self._stops:
                    self._stops.remove(stop)
        return forget

    def close(self) -> None:
        """Close every connection this object opened (and its pool)."""
        with self._lock:
            stops, self._stops = self._stops, []
        for stop in stops:
            stop()
        with self._lock:
            conns, self._all = self._all, []
            pool, self._pool = self._pool, None
        for conn in conns:
            try:
                if pool is not None:
                    pool.putconn(conn.raw)  # type: ignore[attr-defined]
                else:
                    conn.close()
            except Exception:  # noqa: BLE001 - closing what may already be broken
                pass
        if pool is not None:
            pool.close()
        for own in list(self._own):
            try:
                own.close()
            except Exception:  # noqa: BLE001 - closing what may already be broken
                pass
        self._local = threading.local()

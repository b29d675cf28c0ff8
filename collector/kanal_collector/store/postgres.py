"""PostgreSQL connections: psycopg 3 underneath, Kanal's `Connection` interface on top.

Imported only when a database URL says `postgresql://` (psycopg comes with the
`postgres` extra: `pip install 'kanal[server,postgres]'`).

Parameter markers. The store's SQL keeps SQLite's `?` (and `?N`) markers, and a
PostgreSQL connection turns them into PostgreSQL's own `$N` once per distinct statement
text (a cached tokenizer that skips quoted strings, quoted names and comments), then
sends the statement with server-side binding (psycopg's RawCursor, which takes `$N` as
they are). That is the only translation: everything else that differs is explicit in
store/dialect.py. The alternatives were worse: writing every statement with psycopg's
`%s` would make SQLite's hot paths convert markers instead (or double every statement),
and named markers would change all ~400 statements for no gain. Nothing in Kanal's SQL
uses PostgreSQL's `?` operators (jsonb), which this would misread.

Transactions. A Kanal connection runs in autocommit mode and opens its write transactions
itself, like its SQLite twin. SQLite has one writer: BEGIN IMMEDIATE serialises every
write transaction, and Kanal relies on that (a select-then-insert never races, the
processor's batch sees a stable world). PostgreSQL keeps that meaning explicitly: every
write transaction takes a transaction-scoped advisory lock (WRITER_LOCK) as its first
statement, except ingest's group commit, which only appends events. Every transaction
that appends events takes APPEND_LOCK before its first insert into `events` and keeps it
until it commits, so event ids are handed out and become visible in one order: a reader
that has seen id N has seen every id below N that will ever commit, and the processor's
`id > cursor` can't skip an event committed late. Advisory locks belong to the database,
not to a process, so this holds across every `kanal serve` node sharing it: APPEND_LOCK
is the log's single sequencer. (Lock order is always WRITER then APPEND, so the two
can't deadlock.) A claim transaction (`begin(claim=True)`: the dispatchers' and timers'
claims of rows with FOR UPDATE SKIP LOCKED) takes neither lock: row locks keep two
claims apart. Reads run outside transactions and see what was committed when each
statement started.

Hints. `hint(topic)` queues a NOTIFY on channel `kanal_<topic>`; it goes in the same
round trip as the COMMIT, and PostgreSQL delivers it only if the transaction commits.
`Listener` is the other end: a connection of its own that LISTENs.

Types. Rows are plain tuples, as sqlite3 gives. `numeric` (what sum() and avg() of
integers give) is read as int or float, and a Python bool is sent as the integer 0/1
that Kanal's schema keeps flags as, so values look the same on both engines.

Pooling. `Database` (store/db.py) hands request threads connections from a
psycopg_pool pool (checked on checkout, so a restarted server is survived) and gives
workers their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import AdaptersMap, Dumper, Loader
from psycopg_pool import ConnectionPool

from .connection import EVENTS, TOPICS, EngineError, Params
from .dialect import APPEND_LOCK, LOCK_SPACE, POSTGRESQL_DIALECT, WRITER_LOCK, Dialect

_STREAM_BATCH = 5000
"""Rows a server-side cursor fetches at a time."""
_SPECIAL = re.compile(r"""['"?]|--|/\*""")


@lru_cache(maxsize=4096)
def translate(sql: str) -> str:
    """`sql` with its `?` / `?N` markers as PostgreSQL's `$N` (quotes and comments kept)."""
    out: list[str] = []
    pos, count, numbered = 0, 0, False
    while (m := _SPECIAL.search(sql, pos)) is not None:
        start = m.start()
        out.append(sql[pos:start])
        token = m.group()
        if token in ("'", '"'):
            end = start
            while True:  # a doubled quote inside is part of the string
                end = sql.find(token, end + 1)
                if end == -1:
                    raise ValueError(f"unterminated {token} in SQL: {sql[:80]}")
                if sql.startswith(token, end + 1):
                    end += 1
                    continue
                break
            out.append(sql[start:end + 1])
            pos = end + 1
        elif token == "--":
            end = sql.find("\n", start)
            end = len(sql) if end == -1 else end
            out.append(sql[start:end])
            pos = end
        elif token == "/*":
            end = sql.find("*/", start + 2)
            if end == -1:
                raise ValueError(f"unterminated comment in SQL: {sql[:80]}")
            out.append(sql[start:end + 2])
            pos = end + 2
        else:  # ? or ?N
            end = start + 1
            while end < len(sql) and sql[end].isdigit():
                end += 1
            if end > start + 1:
                numbered = True
                out.append("$" + sql[start + 1:end])
            else:
                count += 1
                out.append(f"${count}")
            pos = end
            if numbered and count:
                raise ValueError(f"SQL mixes ? and ?N markers: {sql[:80]}")
    out.append(sql[pos:])
    return "".join(out)


class _NumericLoader(Loader):
    """numeric → int when whole, else float (Kanal keeps no exact decimals)."""

    def load(self, data: Any) -> int | float:
        text = bytes(data).decode()
        if "." in text or "e" in text or "N" in text or "I" in text:
            return float(text)
        return int(text)


class _BoolAsIntDumper(Dumper):
    """True/False → the 0/1 integers Kanal's schema keeps flags as."""

    oid = psycopg.postgres.types["int8"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


def _adapters() -> AdaptersMap:
    adapters = AdaptersMap(psycopg.adapters)
    adapters.register_loader("numeric", _NumericLoader)
    adapters.register_dumper(bool, _BoolAsIntDumper)
    return adapters


ADAPTERS = _adapters()


class _Raw(psycopg.Connection[Any]):
    """psycopg's connection, closed quietly when it is dropped unclosed, as sqlite3's is
    (psycopg warns instead: a worker or a test that forgot `close` would make every
    warning an error under `filterwarnings = error`, at a moment chosen by the garbage
    collector)."""

    def __del__(self, _warn: Any = None, /) -> None:
        if not getattr(self, "closed", True):
            try:
                self.close()
            except Exception:  # noqa: BLE001 - a finaliser must not raise
                pass


def _error(exc: psycopg.Error) -> EngineError:
    return EngineError(str(exc).strip() or type(exc).__name__, sqlstate=exc.sqlstate)


class PGConnection:
    """A psycopg connection behind Kanal's `Connection` interface."""

    dialect: Dialect = POSTGRESQL_DIALECT

    def __init__(self, raw: psycopg.Connection[Any], *, pooled: bool = False) -> None:
        self.raw = raw
        self.pooled = pooled
        self._append_locked = False
        self._hints: set[str] = set()

    @property
    def in_transaction(self) -> bool:
        """True while a transaction is open (or failed and not yet rolled back)."""
        return self.raw.info.transaction_status != pq.TransactionStatus.IDLE

    def execute(self, sql: str, parameters: Params = (), /) -> Any:
        """Run one statement (`?` markers); returns psycopg's cursor."""
        try:
            return self.raw.execute(translate(sql), parameters or None)
        except psycopg.Error as exc:
            raise _error(exc) from exc

    def executemany(self, sql: str, seq_of_parameters: Iterable[Params], /) -> Any:
        """Run one statement per parameter row (psycopg pipelines them)."""
        rows = list(seq_of_parameters)
        cur = self.raw.cursor()
        if not rows:
            return cur
        try:
            cur.executemany(translate(sql), rows)
        except psycopg.Error as exc:
            raise _error(exc) from exc
        return cur

    def stream(self, sql: str, parameters: Params = (), /) -> Iterator[Any]:
        """Rows of a large read through a server-side cursor, a batch at a time.

        Outside a transaction it opens a read-only one (one snapshot for the whole read)
        and ends it when the rows run out or the iterator is closed.
        """
        own = not self.in_transaction
        try:
            if own:
                self.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            with psycopg.RawServerCursor(self.raw, "kanal_stream") as cur:
                cur.itersize = _STREAM_BATCH
                cur.execute(translate(sql), parameters or None)
                yield from cur
            if own:
                self.raw.execute("COMMIT")
        except psycopg.Error as exc:
            raise _error(exc) from exc
        finally:
            if own and self.in_transaction:
                self.raw.execute("ROLLBACK")

    def bulk_insert(self, table: str, columns: Sequence[str],
                    rows: Iterable[Sequence[Any]]) -> None:
        """COPY … FROM STDIN: PostgreSQL's bulk load."""
        statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        try:
            with self.raw.cursor().copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
        except psycopg.Error as exc:
            raise _error(exc) from exc

    def _lock(self, key: int) -> None:
        assert POSTGRESQL_DIALECT.lock_sql is not None
        self.execute(POSTGRESQL_DIALECT.lock_sql, (LOCK_SPACE, key))

    def begin(self, *, spin: float | None = None, writer: bool = True,
              claim: bool = False) -> None:
        """BEGIN, then the writer lock; or the append lock for a transaction that only
        appends events; or no lock for a transaction that only claims rows.

        `spin` is for SQLite's busy handler; PostgreSQL's lock waits need none.
        """
        self._hints.clear()
        self._append_locked = False
        if claim:
            statement = "BEGIN"
        else:
            # One round trip: BEGIN and the lock go as one simple-protocol query (the
            # keys are constants). A transaction that is no writer only appends
            # (ingest's group commit): it takes the append lock at once.
            lock = WRITER_LOCK if writer else APPEND_LOCK
            statement = f"BEGIN; SELECT pg_advisory_xact_lock({LOCK_SPACE}, {lock})"
        try:
            self.raw.execute(statement)
        except psycopg.Error as exc:
            raise _error(exc) from exc
        self._append_locked = not writer and not claim
        if self._append_locked:
            self._hints.add(EVENTS)

    def commit(self) -> None:
        """COMMIT, with the NOTIFY of every hint given in the transaction."""
        notify = "".join(f"NOTIFY {channel(topic)}; " for topic in sorted(self._hints))
        self._hints.clear()
        self.execute(notify + "COMMIT" if notify else "COMMIT")

    def rollback(self) -> None:
        """ROLLBACK, when a transaction is open (its hints are dropped)."""
        self._hints.clear()
        if self.in_transaction:
            self.execute("ROLLBACK")

    def hint(self, topic: str) -> None:
        """NOTIFY `kanal_<topic>` when the transaction commits (nothing outside one)."""
        if topic not in TOPICS:
            raise ValueError(f"unknown hint topic {topic!r}")
        if self.in_transaction:
            self._hints.add(topic)

    def before_append(self) -> None:
        """Take the append lock once per transaction (see the module docstring), and
        hint the processors that events are coming."""
        if not self._append_locked:
            self._lock(APPEND_LOCK)
            self._append_locked = True
        self._hints.add(EVENTS)

    def close(self) -> None:
        """Close the connection."""
        self.raw.close()


def _configure(raw: psycopg.Connection[Any]) -> None:
    raw.autocommit = True


def _options(lock_timeout: float) -> str:
    """Session settings: lock waits give up after `lock_timeout` seconds, as SQLite's
    busy timeout does (a request gets a 503 to retry rather than hanging)."""
    return f"-c lock_timeout={max(1, int(lock_timeout * 1000))}"


def connect(conninfo: str, *, lock_timeout: float = 10.0) -> PGConnection:
    """A new connection of its own (the caller closes it)."""
    try:
        raw = _Raw.connect(
            conninfo, autocommit=True, cursor_factory=psycopg.RawCursor, context=ADAPTERS,
            application_name="kanal", options=_options(lock_timeout))
    except psycopg.Error as exc:
        raise _error(exc) from exc
    return PGConnection(raw)


def make_pool(conninfo: str, *, max_size: int, lock_timeout: float = 10.0
              ) -> ConnectionPool[Any]:
    """A pool of connections for request threads (opened at once; checked on checkout)."""
    return ConnectionPool(
        conninfo, min_size=1, max_size=max(1, max_size), open=True, timeout=30.0,
        kwargs={"autocommit": True, "cursor_factory": psycopg.RawCursor,
                "context": ADAPTERS, "application_name": "kanal",
                "options": _options(lock_timeout)},
        connection_class=_Raw, configure=_configure, check=ConnectionPool.check_connection,
        name="kanal")


def pool_connection(raw: psycopg.Connection[Any]) -> PGConnection:
    """Wrap a connection checked out of the pool."""
    return PGConnection(raw, pooled=True)


def channel(topic: str) -> str:
    """The NOTIFY channel of a hint topic."""
    return f"kanal_{topic}"


class Listener:
    """A connection of its own that LISTENs for the hints of `topics`."""

    def __init__(self, conninfo: str, topics: Sequence[str]) -> None:
        try:
            self.raw = _Raw.connect(conninfo, autocommit=True,
                                    application_name="kanal-listen")
            for topic in topics:
                self.raw.execute(f"LISTEN {channel(topic)}")
        except psycopg.Error as exc:
            raise _error(exc) from exc

    def wait(self, timeout: float) -> set[str]:
        """The topics hinted at within `timeout` seconds (empty when none was); returns
        at the first hint, with every other one already received."""
        topics: set[str] = set()
        prefix = channel("")
        try:
            for note in self.raw.notifies(timeout=timeout, stop_after=1):
                topics.add(note.channel.removeprefix(prefix))
            if topics:
                for note in self.raw.notifies(timeout=0):
                    topics.add(note.channel.removeprefix(prefix))
        except psycopg.Error as exc:
            raise _error(exc) from exc
        return topics

    def close(self) -> None:
        """Close the connection."""
        self.raw.close()

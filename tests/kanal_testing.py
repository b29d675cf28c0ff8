"""Test helpers: real collector processes on loopback, in-process apps on real databases.

The engine under test is SQLite, or PostgreSQL when KANAL_TEST_ENGINE=postgresql and
KANAL_TEST_POSTGRES names a server (tests/run.sh starts a throwaway one and runs the
suite on both). `db_at(path)` is where a test's database lives: the SQLite file at
`path`, or a fresh PostgreSQL database standing for that path (the same one each time
it is asked for), cloned from a migrated template; the helpers below call it, so a test
that names `tmp_path / "kanal.db"` runs on the engine under test.

A module of its own (not conftest.py): test folders with their own conftest.py would
otherwise shadow `from conftest import …`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENGINE = os.environ.get("KANAL_TEST_ENGINE", "sqlite")
"""The storage engine under test: "sqlite" or "postgresql"."""
POSTGRES = ENGINE == "postgresql"
_SERVER = os.environ.get("KANAL_TEST_POSTGRES", "")
_made: dict[str, str] = {}
_made_lock = threading.Lock()
_TEMPLATE = f"kanal_tpl_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"


def sqlite_only(reason: str) -> Any:
    """Mark a test that is about SQLite itself (files, pragmas, the backup API)."""
    import pytest

    return pytest.mark.skipif(POSTGRES, reason=f"SQLite only: {reason}")


def server_url(name: str) -> str:
    """The URL of database `name` on the test server."""
    if not _SERVER:
        raise RuntimeError("KANAL_TEST_ENGINE=postgresql needs KANAL_TEST_POSTGRES "
                           "(tests/run.sh starts a server)")
    return _SERVER.rsplit("/", 1)[0] + "/" + name


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(_SERVER, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def _template() -> str:
    from kanal_collector.store.db import Database
    from kanal_collector.store.schema import migrate

    if _TEMPLATE not in _made:
        _admin(f"DROP DATABASE IF EXISTS {_TEMPLATE} WITH (FORCE)")
        _admin(f"CREATE DATABASE {_TEMPLATE}")
        db = Database(server_url(_TEMPLATE))
        conn = db.connect()
        try:
            migrate(conn)
        finally:
            conn.close()
        _made[_TEMPLATE] = server_url(_TEMPLATE)
    return _TEMPLATE


def db_at(path: Path | str, *, migrated: bool = True) -> str:
    """The database of the engine under test that stands for `path` (see above).

    On PostgreSQL a new database is migrated already (cloned from a template), unless
    `migrated` is False; a URL is returned as it is.
    """
    text = str(path)
    if not POSTGRES or text.startswith("postgresql://"):
        return text
    with _made_lock:
        if text not in _made:
            name = "t_" + hashlib.sha1(text.encode()).hexdigest()[:20]
            template = f"TEMPLATE {_template()}" if migrated else ""
            _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            _admin(f"CREATE DATABASE {name} {template}")
            _made[text] = server_url(name)
        return _made[text]


def made() -> set[str]:
    """The paths test databases were made for so far."""
    with _made_lock:
        return set(_made)


def drop_made(keep: frozenset[str] | set[str] = frozenset()) -> None:
    """Drop the test databases made so far, but those of `keep` (and the template)."""
    with _made_lock:
        made = [(k, v) for k, v in _made.items() if k != _TEMPLATE and k not in keep]
        for key, url in made:
            _admin(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")
            del _made[key]


def connect_to(target: Path | str) -> Any:
    """A new connection (store.Connection) to a test database; the caller closes it."""
    from kanal_collector.store.db import Database

    return Database(db_at(target)).connect()


def query(target: Path | str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run one statement against a test database; its rows."""
    conn = connect_to(target)
    try:
        return [tuple(r) for r in conn.execute(sql, args).fetchall()]
    finally:
        conn.close()


def event_rows(target: Path | str) -> list[dict[str, Any]]:
    """Every stored event, oldest first, as a dict with its JSON body parsed and whole
    (store/events.py `full_body`: the keys its columns hold put back, as readers see it)."""
    from kanal_collector.store.events import full_body

    conn = connect_to(target)
    try:
        cur = conn.execute("SELECT id, source_id, message_id, type, event, user_id, "
                           "anonymous_id, origin, key_kind, verified, timestamp, "
                           "received_at, body FROM events ORDER BY id")
        keys = ("id", "source_id", "message_id", "type", "event", "user_id", "anonymous_id",
                "origin", "key_kind", "verified", "timestamp", "received_at", "body")
        rows = [dict(zip(keys, r, strict=True)) for r in cur.fetchall()]
    finally:
        conn.close()
    for row in rows:
        row["body"] = full_body(json.loads(row["body"]), row["message_id"], row["type"],
                                row["event"], row["user_id"], row["anonymous_id"],
                                row["timestamp"], row["received_at"])
    return rows


def full_scans(conn: Any, statements: list[str]) -> dict[str, list[str]]:
    """{table: statements} of these SQLite statements whose query plan reads a whole
    table ("SCAN t"; "SCAN t USING … INDEX" walks an index in order and is not one)."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    scans: dict[str, list[str]] = {}
    for sql in statements:
        if not sql.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE",
                                                "WITH")):
            continue
        for *_, detail in conn.execute(f"EXPLAIN QUERY PLAN {sql}"):
            words = detail.split()
            if words[0] == "SCAN" and "USING" not in words and words[1] in tables:
                scans.setdefault(words[1], []).append(" ".join(sql.split()))
    return scans


def dump_text(conn: Any) -> str:
    """Every row of every table of a database as text (either engine)."""
    out = []
    for table in conn.dialect.tables(conn):
        out += [f"{table} {tuple(r)!r}" for r in conn.execute(f"SELECT * FROM {table}")]
    return "\n".join(out)


_KEY_LINE = re.compile(r"^\s*(public|secret|admin) key:\s*(\S+)\s*$")
_LISTEN_LINE = re.compile(r"listening on (http://\S+)")


@dataclass
class Collector:
    """A `kanal serve` process started by a test, and what it printed at start."""

    url: str
    db_path: Path | str
    process: subprocess.Popen[str]
    db: str = ""
    """The database it runs on (db_at(db_path)): pass it to `--db`."""
    keys: dict[str, str] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)
    drain: Any = None

    @property
    def public_key(self) -> str:
        return self.keys["public"]

    @property
    def secret_key(self) -> str:
        return self.keys["secret"]

    @property
    def admin_key(self) -> str:
        return self.keys["admin"]

    def events(self) -> list[dict[str, Any]]:
        """Every stored event, oldest first, with its JSON body parsed."""
        return event_rows(self.db)

    def wait_for_events(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Poll the database until at least `count` events are stored."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            if len(events) >= count or time.monotonic() > deadline:
                return events
            time.sleep(0.05)

    def stop(self) -> None:
        """Ask the process to stop (SIGTERM) and wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close_pipe()

    def kill(self) -> None:
        """kill -9: no clean shutdown at all."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close_pipe()

    def _close_pipe(self) -> None:
        if self.drain is not None:
            self.drain.join(5)
        if self.process.stdout is not None and not self.process.stdout.closed:
            self.process.stdout.close()


def start_collector(
    db_path: Path,
    *,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    keys: dict[str, str] | None = None,
) -> Collector:
    """Start `kanal serve` on a free loopback port and wait until it listens.

    `keys` carries the keys of an earlier start over (a restart prints none).
    """
    db = db_at(db_path)
    cmd = [
        sys.executable, "-m", "kanal_collector", "serve",
        "--host", "127.0.0.1", "--port", "0", "--db", db, *args,
    ]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=full_env, cwd=cwd or db_path.parent,
    )
    collector = Collector(url="", db_path=db_path, process=proc, keys=dict(keys or {}), db=db)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    for line in proc.stdout:
        collector.output.append(line)
        if m := _KEY_LINE.match(line):
            collector.keys[m.group(1)] = m.group(2)
        if m := _LISTEN_LINE.search(line):
            collector.url = m.group(1)
            break
        if time.monotonic() > deadline:
            break
    if not collector.url:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        raise RuntimeError("collector did not start:\n" + "".join(collector.output))
    # Keep draining output so the child never blocks on a full pipe.
    import threading

    def _drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            collector.output.append(line)

    collector.drain = threading.Thread(target=_drain, daemon=True)
    collector.drain.start()
    return collector


@dataclass
class App:
    """An in-process collector (Flask test client) on a fresh database."""

    app: Any
    client: Any
    db_path: Path | str
    keys: dict[str, str]
    clock: Any

    @property
    def db(self) -> str:
        """The database it runs on (db_at(db_path))."""
        return db_at(self.db_path)

    def process(self) -> int:
        """Let the processor apply everything ingested so far; how many events."""
        from kanal_collector.app import build_processor

        processor = build_processor(self.app.extensions["kanal"].db)
        try:
            return processor.catch_up()
        finally:
            processor.close()

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Run a query against the database."""
        return query(self.db, sql, *args)

    def events(self) -> list[dict[str, Any]]:
        """Every stored event, body parsed."""
        return event_rows(self.db)


def make_app(db_path: Path, **settings: Any) -> App:
    """create_app on `db_path` with a fake clock and the first-start keys."""
    from kanal_collector.app import create_app
    from kanal_collector.clock import FakeClock
    from kanal_collector.config import Config
    from kanal_collector.store.keys import bootstrap

    clock = FakeClock(1_790_000_000.0)
    config = Config(db=db_at(db_path), **settings)
    app = create_app(config, clock=clock)
    runtime = app.extensions["kanal"]
    keys = bootstrap(runtime.db.conn(), int(clock.now() * 1000)) or {}
    return App(app=app, client=app.test_client(), db_path=db_path, keys=keys, clock=clock)


class SmtpCatcher:
    """An aiosmtpd handler that keeps every mail: (recipients, parsed message)."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        from email import message_from_bytes, policy

        self.received.append((list(envelope.rcpt_tos), message_from_bytes(
            envelope.original_content or b"", policy=policy.default)))
        return "250 OK"


def smtp_controller(handler: Any) -> Any:
    """aiosmtpd's Controller for `handler` on an ephemeral loopback port (`.port` once
    started)."""
    from aiosmtpd.controller import Controller

    class _Controller(Controller):
        def _trigger_server(self) -> None:
            assert self.server is not None
            self.port = self.server.sockets[0].getsockname()[1]
            super()._trigger_server()

    return _Controller(handler, hostname="127.0.0.1", port=0)


def poll(check: Any, timeout: float = 90.0, step: float = 0.2) -> Any:
    """Call `check` until it returns something true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(step)
    return check()


def _schema_objects(conn: Any) -> set[tuple[str, str]]:
    """The tables and the indexes made by name of a database (either engine)."""
    if conn.dialect.name == "sqlite":
        return set(conn.execute("SELECT type, name FROM sqlite_master WHERE type IN "
                                "('table', 'index') AND sql IS NOT NULL "
                                "AND name != 'sqlite_sequence'").fetchall())
    tables = {("table", t) for t in conn.dialect.tables(conn)}
    return tables | {("index", str(r[0])) for r in conn.execute(
        "SELECT i.indexname FROM pg_indexes i WHERE i.schemaname = current_schema() "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)")}


def downgrade(conn: Any, version: int) -> None:
    """Put a database's schema back to `version`: drop the tables, indexes and columns
    later migrations made (found by building a fresh schema up to `version`, in memory)
    and set the version (SQLite's user_version, PostgreSQL's kanal_migrations)."""
    from kanal_collector.store import funnel_days, row_counts, score_counts
    from kanal_collector.store.connection import connect_sqlite
    from kanal_collector.store.schema import MIGRATIONS, Migration

    fresh = connect_sqlite(":memory:")
    try:
        step = Migration(fresh)
        for apply in MIGRATIONS[:version]:
            apply(step)
        keep = _schema_objects(fresh)
        columns = {name: fresh.dialect.columns(fresh, name) for kind, name in keep
                   if kind == "table"}
    finally:
        fresh.close()
    if version < 29:  # the triggers of store/row_counts.py (migration 29)
        row_counts.drop(conn)
    if version < 23:  # the triggers of store/score_counts.py (migration 23)
        score_counts.drop(conn)
    if version < 22:  # the triggers of store/funnel_days.py (migration 22)
        funnel_days.drop(conn)
    if version < 32 and "attribution_touchpoints" not in conn.dialect.tables(conn):
        # Migration 32 put the touchpoints on the timeline: back in a table of their own.
        Migration(conn).ddl(
            """CREATE TABLE attribution_touchpoints (
                profile_id {INT} NOT NULL, timestamp {INT} NOT NULL,
                event_id {INT} NOT NULL, key_id {INT} NOT NULL,
                PRIMARY KEY (profile_id, timestamp, event_id)
            ){WITHOUT_ROWID}""")
        conn.execute("INSERT INTO attribution_touchpoints (profile_id, timestamp, event_id, "
                     "key_id) SELECT profile_id, timestamp, event_id, key_id "
                     "FROM profile_events WHERE key_id IS NOT NULL")
    if 9 <= version < 34 and "active_days" not in conn.dialect.tables(conn):
        # Migration 34 put a person's active days on their profile row: back in a table.
        from kanal_collector.store.activity import decode_days
        Migration(conn).ddl(
            """CREATE TABLE active_days (
                day {INT} NOT NULL, profile_id {INT} NOT NULL,
                PRIMARY KEY (day, profile_id)
            ){WITHOUT_ROWID}""")
        conn.execute("CREATE INDEX active_days_profile ON active_days(profile_id)")
        conn.executemany("INSERT INTO active_days (day, profile_id) VALUES (?, ?)", [
            (day, int(pid)) for pid, text in conn.execute(
                "SELECT id, active_days FROM profiles WHERE active_days IS NOT NULL").fetchall()
            for day in decode_days(text)])
    # Indexes first: an index of a dropped table goes with it.
    for kind, name in sorted(_schema_objects(conn) - keep, key=lambda o: o[0] != "index"):
        if (kind, name) in _schema_objects(conn):
            conn.execute(f"DROP {kind.upper()} {name}")
    # Columns later migrations added to older tables (ALTER TABLE … ADD COLUMN).
    for table, kept in sorted(columns.items()):
        for column in conn.dialect.columns(conn, table):
            if column not in kept:
                conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    if conn.dialect.name == "sqlite":
        conn.execute(f"PRAGMA user_version = {version}")
    else:
        conn.execute("DELETE FROM kanal_migrations WHERE version > ?", (version,))

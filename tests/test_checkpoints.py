"""The processor's checkpoints on a thread of their own (store/checkpoints.py), SQLite."""

from __future__ import annotations

import json
import logging
import struct
from pathlib import Path

import pytest
from kanal_testing import sqlite_only

from kanal_collector.app import close_app, create_app
from kanal_collector.config import Config
from kanal_collector.store.checkpoints import (
    RESTART_PAGES,
    SAFETY_PAGES,
    WAL_SHARE,
    BackgroundCheckpoints,
)
from kanal_collector.store.connection import WAL_KEEP_BYTES, Connection
from kanal_collector.store.db import Database, transaction
from kanal_collector.store.events import EventRow, append_events
from kanal_collector.store.schema import migrate
from kanal_collector.workers import Processor, StatsStep

pytestmark = sqlite_only("the WAL and its checkpoints are SQLite's")


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(tmp_path / "k.db")
    migrate(database.conn())
    with transaction(database.conn()) as conn:
        conn.execute("INSERT INTO sources (name, created_at) VALUES ('default', 0)")
        conn.execute("CREATE TABLE filler (n INTEGER PRIMARY KEY, text TEXT)")
    yield database  # type: ignore[misc]
    database.close()


def wal(db: Database) -> tuple[int, int]:
    """(pages in the WAL, pages of them copied into the database file), read from the
    WAL index (`-shm`) without copying anything: its header's mxFrame (a u32 at byte 16)
    and the checkpoint's nBackfill (at byte 96), in the machine's byte order (SQLite's
    file format, "The WAL-Index Format")."""
    head = Path(f"{db.target}-shm").read_bytes()[:100]
    return struct.unpack_from("=I", head, 16)[0], struct.unpack_from("=I", head, 96)[0]


def fill(conn: Connection, start: int, n: int = 200) -> None:
    """Commit n rows of 2 KB: about 100 pages of the WAL."""
    with transaction(conn) as tx:
        tx.executemany("INSERT INTO filler (n, text) VALUES (?, ?)",
                       [(start + i, "x" * 2000) for i in range(n)])


def test_the_thread_copies_every_commit_and_close_waits_for_the_last(db: Database) -> None:
    writer = db.connect()
    checkpoints = BackgroundCheckpoints(db, writer)
    try:
        for k in range(5):
            fill(writer, k * 1000)
            checkpoints.after_commit()
        assert writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == SAFETY_PAGES
        assert writer.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    finally:
        checkpoints.close()
        writer.close()
    pages, copied = wal(db)
    assert pages > 400 and copied == pages  # nothing left for anyone else to copy
    assert checkpoints.copies >= 1
    assert checkpoints.limit == RESTART_PAGES  # a small database: the least


def test_the_wal_may_grow_to_an_eighth_of_the_database(db: Database) -> None:
    writer = db.connect()
    checkpoints = BackgroundCheckpoints(db, writer, restart_pages=1)
    try:
        fill(writer, 0, n=2000)  # about 1,000 pages
        checkpoints.after_commit()
        checkpoints.wait()
        size = writer.execute("PRAGMA page_count").fetchone()[0]
        assert size > 1000 and checkpoints.limit == size // WAL_SHARE
    finally:
        checkpoints.close()
        writer.close()


def test_the_wal_starts_over_past_restart_pages(db: Database) -> None:
    def grown(restart_pages: int, *, begin_first: bool) -> int:
        """Pages in the WAL after 24 batches of about 55 pages. The processor asks for
        a batch's copy as it commits and begins the next batch while it runs;
        `begin_first` begins each batch before asking, which is where the race mostly
        ends when the writer does not wait."""
        writer = db.connect()
        checkpoints = BackgroundCheckpoints(db, writer, restart_pages=restart_pages)
        try:
            for k in range(24):
                if not begin_first:
                    checkpoints.before_batch()
                writer.execute("BEGIN IMMEDIATE")
                writer.execute("SELECT count(*) FROM filler").fetchall()  # reads the WAL
                if begin_first and k:
                    checkpoints.after_commit()
                    checkpoints.wait()
                writer.executemany("INSERT INTO filler (n, text) VALUES (?, ?)",
                                   [(restart_pages * 100_000 + k * 1000 + i, "x" * 2000)
                                    for i in range(100)])
                writer.execute("COMMIT")
                if not begin_first:
                    checkpoints.after_commit()
            checkpoints.after_commit()
        finally:
            checkpoints.close()
            writer.close()
        return wal(db)[0]

    # A writer working back to back never lets the WAL start over by itself ...
    unbounded = grown(10_000_000, begin_first=True)
    assert unbounded > 24 * 50
    # ... unless it waits for the copy between batches once it is past restart_pages
    # (a start-over can still fail now and then: a reader of the thread's on the WAL).
    assert grown(100, begin_first=False) < unbounded / 2


def test_a_failed_copy_is_logged_and_close_does_not_hang(
        db: Database, caplog: pytest.LogCaptureFixture) -> None:
    writer = db.connect()
    checkpoints = BackgroundCheckpoints(db, writer)
    checkpoints._conn.close()  # the thread's connection is gone: its checkpoint fails
    fill(writer, 0)
    with caplog.at_level(logging.ERROR, logger="kanal.checkpoints"):
        checkpoints.after_commit()
        checkpoints.wait()
    assert "a checkpoint of the WAL failed" in caplog.text
    checkpoints.close()
    writer.close()


def test_the_processor_leaves_nothing_to_copy_once_settled(db: Database) -> None:
    rows = [EventRow(1, f"m{i}", "track", "E", f"u{i}", None, "server", "secret", 1,
                     1_700_000_000_000 + i, 1_700_000_000_000 + i, json.dumps({"i": i}))
            for i in range(300)]
    with transaction(db.conn()) as conn:
        append_events(conn, rows)
    processor = Processor(db, [StatsStep()], batch_size=100)
    assert processor.catch_up() == 300
    processor.settle()  # the copy of its last commit made, the processor still open
    pages, copied = wal(db)
    assert pages > 0 and copied == pages
    processor.close()


def test_serve_connections_leave_checkpoints_to_the_processor(tmp_path: Path) -> None:
    app = create_app(Config(db=str(tmp_path / "k.db")))
    try:
        conn = app.extensions["kanal"].db.conn()
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == SAFETY_PAGES
    finally:
        close_app(app)
    # Ingest only (`kanal serve --no-workers`) and any other command keep SQLite's own.
    app = create_app(Config(db=str(tmp_path / "k.db"), run_workers=False))
    try:
        conn = app.extensions["kanal"].db.conn()
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    finally:
        close_app(app)
    plain = Database(tmp_path / "k.db")
    assert plain.conn().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    # Every connection cuts the WAL file back when the WAL starts over.
    assert plain.conn().execute("PRAGMA journal_size_limit").fetchone()[0] == WAL_KEEP_BYTES
    plain.close()


def test_closing_the_database_mid_copy_lets_the_thread_finish_and_stop(
        db: Database) -> None:
    writer = db.connect()
    checkpoints = BackgroundCheckpoints(db, writer)  # a processor nobody closes
    fill(writer, 0, n=5000)  # about 2,500 pages: a copy of some milliseconds
    checkpoints.after_commit()
    db.close()  # closed the connections `db` handed out under the copy: a crash
    assert checkpoints.copies == 1
    assert not checkpoints._thread.is_alive()
    checkpoints.close()  # again: nothing

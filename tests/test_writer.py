"""Group commit: many threads, few commits, every row stored once, errors reach everyone."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from kanal_testing import db_at

from kanal_collector.errors import StorageError
from kanal_collector.ingest.auth import KeyCache
from kanal_collector.ingest.writer import EventWriter
from kanal_collector.store.db import Database, transaction
from kanal_collector.store.events import EventRow, FailedRow
from kanal_collector.store.keys import create_key, revoke_key
from kanal_collector.store.schema import migrate


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(db_at(tmp_path / "k.db"))
    migrate(database.conn())
    with transaction(database.conn()) as conn:
        conn.execute("INSERT INTO sources (name, created_at) VALUES ('default', 0)")
    yield database  # type: ignore[misc]
    database.close()


def row(message_id: str) -> EventRow:
    return EventRow(1, message_id, "track", "E", "u", None, "server", "secret", 1, 0, 0, "{}")


def test_concurrent_writes_share_commits_and_dedupe(db: Database) -> None:
    wakes: list[int] = []
    writer = EventWriter(db, on_commit=lambda: wakes.append(1))
    results: list[int] = []

    def work(n: int) -> None:
        for i in range(50):
            # Every thread also replays one id that another thread writes too.
            results.append(writer.write([row(f"t{n}-{i}"), row(f"shared-{i}")]))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    count = db.conn().execute("SELECT count(*) FROM events").fetchone()[0]
    assert count == 8 * 50 + 50
    assert sum(results) == count
    assert writer.commits <= 8 * 50  # groups formed: fewer commits than writes
    assert wakes  # the processor was woken
    writer.close()


def test_a_failed_commit_raises_for_every_waiter_and_stores_nothing(db: Database) -> None:
    writer = EventWriter(db)
    other = db.connect()
    other.begin()  # hold what an append needs past the busy timeout
    other.before_append()
    db.busy_timeout = 0.1
    try:
        with pytest.raises(StorageError):
            writer.write([row("a")], [FailedRow(1, "secret", 0, "r", "{}")])
    finally:
        other.rollback()
        other.close()
    assert db.conn().execute("SELECT count(*) FROM events").fetchone()[0] == 0
    assert writer.write([row("a")]) == 1  # and it recovers
    writer.close()


def test_key_cache_expires_revocations(db: Database) -> None:
    keys = {kind: create_key(db.conn(), kind, 0) for kind in ("public", "secret")}
    now = [0.0]
    cache = KeyCache(db, ttl=2.0, monotonic=lambda: now[0])
    assert cache.get(keys["public"]) is not None
    revoke_key(db.conn(), keys["public"], 1)
    assert cache.get(keys["public"]) is not None  # cached
    now[0] = 2.5
    assert cache.get(keys["public"]) is None
    assert cache.get("") is None
    assert cache.get("x" * 500) is None
    assert cache.secrets(1) == [keys["secret"]]


def test_base_install_kanal_command_says_what_to_install() -> None:
    code = ("import sys; sys.modules['flask'] = None; sys.modules['click'] = None\n"
            "from kanal_collector._entry import main; main()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "pip install 'kanal[server]'" in proc.stderr


def test_sqlite_version_supports_what_we_use() -> None:
    # ON CONFLICT … DO UPDATE needs SQLite 3.24+, RETURNING-free code needs nothing newer.
    assert sqlite3.sqlite_version_info >= (3, 24, 0)

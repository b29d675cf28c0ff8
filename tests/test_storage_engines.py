"""The storage engines: markers, locks and gap-safe event ids, `kanal db copy`.

The copy tests run on the engine under test (SQLite → the engine under test); the lock
and gap tests are about PostgreSQL's advisory locks and run there only.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from kanal_testing import POSTGRES, App, connect_to, db_at
from profiles_util import Log

from kanal_collector.cli import cli
from kanal_collector.store.connection import Connection
from kanal_collector.store.copy import copy_database, digest
from kanal_collector.store.db import Database, masked, transaction
from kanal_collector.store.events import EventRow, append_events, events_after
from kanal_collector.store.postgres import translate
from kanal_collector.store.schema import migrate
from kanal_collector.workers import Processor, StatsStep

postgres_only = pytest.mark.skipif(not POSTGRES, reason="PostgreSQL's advisory locks")


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT ? , ?", "SELECT $1 , $2"),
    ("SELECT '?', \"a?\" FROM t WHERE x = ?", "SELECT '?', \"a?\" FROM t WHERE x = $1"),
    ("SELECT 'it''s ?' || ?", "SELECT 'it''s ?' || $1"),
    ("SELECT ? -- what?\n, ?", "SELECT $1 -- what?\n, $2"),
    ("SELECT /* ? */ ?", "SELECT /* ? */ $1"),
    ("SELECT ?1, ?2, ?1", "SELECT $1, $2, $1"),
    ("SELECT 1", "SELECT 1"),
])
def test_markers_become_postgres_markers_outside_quotes_and_comments(sql: str,
                                                                    expected: str) -> None:
    assert translate(sql) == expected


@pytest.mark.parametrize("sql", ["SELECT ?1, ?", "SELECT 'open ?", "SELECT /* ?"])
def test_unclear_statements_are_refused(sql: str) -> None:
    with pytest.raises(ValueError):
        translate(sql)


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://kanal:s3cret@db.example:5432/kanal",
     "postgresql://kanal:***@db.example:5432/kanal"),
    ("postgresql://kanal@db.example/kanal", "postgresql://kanal@db.example/kanal"),
    ("postgres://u:p%40ss@h/k?sslmode=require", "postgres://u:***@h/k?sslmode=require"),
    ("kanal.db", "kanal.db"),
])
def test_passwords_are_never_shown(url: str, shown: str) -> None:
    assert masked(url) == shown
    assert Database(url).display == shown


# -- PostgreSQL: the writer lock and gap-safe appends --------------------------------

def _waiting(conn: Connection) -> int:
    """Sessions waiting for an advisory lock."""
    return int(conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                            "AND NOT granted").fetchone()[0])


def _until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _row(n: str) -> EventRow:
    return EventRow(1, n, "track", "E", f"u-{n}", None, "server", "secret", 1,
                    1_700_000_000_000, 1_700_000_000_000, json.dumps({"n": n}))


@postgres_only
def test_write_transactions_are_serialised_like_sqlite(log: Log) -> None:
    first, second, watcher = (log.db.connect() for _ in range(3))
    first.begin()
    done = threading.Event()

    def write() -> None:
        with transaction(second):
            second.execute("INSERT INTO meta (key, value) VALUES ('b', 'second')")
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    _until(lambda: _waiting(watcher) == 1)  # second waits for first's writer lock
    assert not done.is_set()
    first.execute("INSERT INTO meta (key, value) VALUES ('a', 'first')")
    first.commit()
    thread.join(20)
    assert done.is_set()
    for conn in (first, second, watcher):
        conn.close()


@postgres_only
def test_ids_become_visible_in_order_so_the_processor_skips_none(log: Log) -> None:
    """Long and short append transactions on two connections interleave; the processor
    (its cursor is the last event id) reads in between and must see every event."""
    long_tx, short_tx, watcher = (log.db.connect() for _ in range(3))
    processor = Processor(log.db, [StatsStep()], batch_size=3)
    acknowledged: list[str] = []
    shorts: list[str] = []
    for round_ in range(4):
        # A long transaction appends first and holds on (an ingest group still parsing).
        long_tx.begin(writer=False)  # ingest's kind of transaction
        append_events(long_tx, [_row(f"long-{round_}-{i}") for i in range(3)])
        done = threading.Event()

        def short(r: int = round_, done: threading.Event = done) -> None:
            with transaction(short_tx, writer=False) as conn:
                append_events(conn, [_row(f"short-{r}")])
            shorts.append(f"short-{r}")
            done.set()

        thread = threading.Thread(target=short)
        thread.start()
        _until(lambda: _waiting(watcher) == 1)  # the short one waits for its turn
        assert processor.run_once() == 0  # nothing is visible yet, so nothing is skipped
        long_tx.commit()
        acknowledged += [f"long-{round_}-{i}" for i in range(3)]
        thread.join(20)
        assert done.is_set()
        processor.catch_up()
    acknowledged += shorts
    applied = log.conn.execute("SELECT sum(count) FROM event_stats").fetchone()[0]
    assert applied == len(acknowledged) == 16
    ids = [e.id for e in events_after(log.conn, 0, 100)]
    assert ids == sorted(ids) and len(ids) == 16
    processor.close()
    for conn in (long_tx, short_tx, watcher):
        conn.close()


@postgres_only
def test_without_the_append_lock_a_cursor_would_skip_a_late_commit(log: Log) -> None:
    """Why the lock is there: plain inserts commit out of id order, and a reader that
    moved its cursor past the later id never sees the earlier one."""
    late, early = log.db.connect(), log.db.connect()
    insert = ("INSERT INTO events (source_id, message_id, type, event, user_id, "
              "anonymous_id, origin, key_kind, verified, timestamp, received_at, body) "
              "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)")
    late.execute("BEGIN")
    late.execute(insert, _row("late"))  # takes the lower id, commits later
    early.execute(insert, _row("early"))  # autocommit: the higher id is visible at once
    cursor = max(e.id for e in events_after(log.conn, 0, 10))
    late.execute("COMMIT")
    assert [e.message_id for e in events_after(log.conn, cursor, 10)] == []  # skipped
    assert len(events_after(log.conn, 0, 10)) == 2
    late.close()
    early.close()


# -- kanal db copy -------------------------------------------------------------------

@pytest.fixture
def source(tmp_path: Path) -> Iterator[Log]:
    """A SQLite database (what a shop moves from) with people and orders, processed."""
    lg = Log(tmp_path / "source.db", sqlite=True)
    for i in range(60):
        lg.add("identify", user_id=f"u{i}", anon=f"a{i}", trusted=True,
               traits={"email": f"p{i}@example.com", "name": "Ann \u00e9\x01"})
        lg.add("track", event="Order Completed", user_id=f"u{i}", trusted=True,
               properties={"revenue": i + 0.25, "order_id": f"o{i}"})
    lg.process()
    # Scores, whose counts per stage triggers keep (as row_counts keeps the profiles').
    conn = lg.db.conn()
    with transaction(conn):
        fit = conn.execute("INSERT INTO predict_fits (model_version, started_at, as_of, "
                           "status, record) VALUES ('t', 0, 0, 'published', '{}') "
                           "RETURNING id").fetchone()[0]
        conn.executemany(
            "INSERT INTO predict_scores (profile_id, fit_id, stage, churn_risk, "
            "recency_score, frequency_score, monetary_score, historic_value, inputs) "
            "VALUES (?, ?, ?, ?, 3, 3, 3, 10.0, '{}')",
            [(pid, fit, ("new", "active")[pid % 2], None if pid % 3 else "high")
             for (pid,) in conn.execute("SELECT id FROM profiles").fetchall()])
    try:
        yield lg
    finally:
        lg.close()
        lg.db.close()


def _digests(conn: Connection) -> dict[str, tuple[int, str]]:
    out = {}
    for table in conn.dialect.tables(conn):
        out[table] = digest(conn, table, conn.dialect.columns(conn, table),
                            conn.dialect.primary_key(conn, table))
    return out


def test_copy_carries_every_row_and_the_id_counters(source: Log, tmp_path: Path) -> None:
    target = connect_to(db_at(tmp_path / "target.db", migrated=False))
    migrate(target)
    src = source.db.conn()
    # The newest events are deleted (`kanal forget`): their ids must never come back.
    top = src.execute("SELECT max(id) FROM events").fetchone()[0]
    with transaction(src):
        src.execute("DELETE FROM profile_events WHERE event_id > ?", (top - 2,))
        src.execute("DELETE FROM events WHERE id > ?", (top - 2,))
    results = list(copy_database(src, target))
    assert all(r.same for r in results), [r for r in results if not r.same]
    assert _digests(src) == _digests(target)
    events = next(r for r in results if r.table == "events")
    assert events.source_rows == events.target_rows == 118
    with transaction(target) as conn:
        added = append_events(conn, [_row("after-the-move")])
    assert added == 1
    new_id = target.execute("SELECT id FROM events WHERE message_id = 'after-the-move'"
                            ).fetchone()[0]
    # Past every id the source handed out, deleted ones too (PostgreSQL: the first of
    # its month, store/partitions.py).
    assert new_id == top + 1 or POSTGRES and new_id > top
    target.close()


def test_a_stopped_copy_continues_and_a_second_run_catches_up(source: Log,
                                                              tmp_path: Path) -> None:
    target = connect_to(db_at(tmp_path / "target.db", migrated=False))
    migrate(target)
    src = source.db.conn()

    class Stop(Exception):
        pass

    def stop_midway(table: str, done: int, total: int) -> None:
        if table == "events" and done >= 60:
            raise Stop

    from kanal_collector.store import copy as copying

    with pytest.raises(Stop):
        for _ in copying.copy_database(src, target, progress=stop_midway, page=20):
            pass
    pages = {}
    for r in copying.copy_database(src, target, page=20):
        pages[r.table] = r
    assert all(r.same for r in pages.values())
    assert pages["events"].rows_written < 120  # what was copied before is not again
    # The source changes (an update, a delete, new rows); a second run carries it all.
    with transaction(src):
        src.execute("UPDATE profiles SET state = ? WHERE id = 1", ('{"changed": true}',))
        src.execute("DELETE FROM identities WHERE value = 'a7'")
    source.add("track", event="Late", user_id="u1", trusted=True)
    again = {r.table: r for r in copying.copy_database(src, target, page=20)}
    assert all(r.same for r in again.values())
    assert again["events"].rows_written == 1  # the new row only
    assert again["sources"].rows_written == 0
    assert _digests(src) == _digests(target)
    target.close()


def test_db_copy_command_prints_each_table_and_refuses_itself(source: Log,
                                                             tmp_path: Path) -> None:
    target = db_at(tmp_path / "target.db", migrated=False)
    runner = CliRunner()
    result = runner.invoke(cli, ["db", "copy", "--db", source.db.target, "--to", target])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines()
             if line.startswith("  events ") and "digest" in line]
    assert len(lines) == 1 and "rows        120 -> 120" in lines[0] and lines[0].endswith("ok")
    assert "every table's rows and digest match" in result.output
    again = runner.invoke(cli, ["db", "copy", "--db", source.db.target, "--to", target])
    assert "0 rows written" in again.output
    same = runner.invoke(cli, ["db", "copy", "--db", source.db.target,
                               "--to", source.db.target])
    assert same.exit_code == 1 and "the database being copied" in same.output


# -- U+0000, which PostgreSQL's text can't hold ----------------------------------------

def test_nul_in_ids_is_refused_and_refused_bodies_keep_it_escaped(kanal_app: App) -> None:
    auth = (kanal_app.keys["secret"], "")
    r = kanal_app.client.post("/v1/track", json={"userId": "a\x00b", "event": "E"},
                              auth=auth)
    assert r.status_code == 400 and "NUL" in r.get_json()["message"]
    r = kanal_app.client.post("/v1/track", data=b'{"userId": "u", "event": "\x00"',
                              auth=auth, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = kanal_app.client.post("/v1/batch", auth=auth, json={"batch": [
        {"type": "track", "userId": "u1", "event": "Kept", "properties": {"n": "x\x00y"}},
        {"type": "track", "userId": "u2", "event": "E\x00"}]})
    assert r.status_code == 200 and r.get_json()["stored"] == 1
    kept = [e for e in kanal_app.events() if e["event"] == "Kept"]
    assert kept[0]["body"]["properties"]["n"] == "x\x00y"  # bodies keep any string
    failed = kanal_app.rows("SELECT reason, body FROM failed_events")
    assert any("NUL" in reason and "\\u0000" in body for reason, body in failed)


@postgres_only
def test_workers_reconnect_when_the_server_drops_their_connection(log: Log) -> None:
    from kanal_collector.clock import FakeClock
    from kanal_collector.workers import Supervisor

    processor = Processor(log.db, [StatsStep()])
    wake = threading.Event()
    supervisor = Supervisor(log.db, FakeClock(1000.0), [(processor, wake)],
                            lease_seconds=0.3, poll_interval=0.05)
    supervisor.start()
    try:
        with transaction(log.conn) as conn:
            append_events(conn, [_row("before")])
        wake.set()
        applied = "SELECT coalesce(sum(count), 0) FROM event_stats"
        _until(lambda: log.conn.execute(applied).fetchone()[0] == 1)
        pids = [c.raw.info.backend_pid for c in (processor._conn, supervisor._conn)
                if c is not None]
        for pid in pids:  # what a restarted server or a failover does to a session
            log.conn.execute("SELECT pg_terminate_backend(?)", (pid,))
        with transaction(log.conn) as conn:
            append_events(conn, [_row("after")])
        wake.set()
        _until(lambda: log.conn.execute(applied).fetchone()[0] == 2)
        assert supervisor.errors >= 1
    finally:
        supervisor.stop()

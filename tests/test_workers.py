"""The processor's cursor and the supervisor, without a server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from kanal_testing import db_at, sqlite_only

from kanal_collector.clock import FakeClock
from kanal_collector.ingest.writer import EventWriter
from kanal_collector.nodes import WorkerGroup, courtesy
from kanal_collector.store.connection import Connection
from kanal_collector.store.db import Database, transaction
from kanal_collector.store.events import EventRow, StoredEvent, append_events
from kanal_collector.store.schema import migrate
from kanal_collector.workers import Processor, StatsStep, Supervisor


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(db_at(tmp_path / "k.db"))
    migrate(database.conn())
    with transaction(database.conn()) as conn:
        conn.execute("INSERT INTO sources (name, created_at) VALUES ('default', 0)")
    yield database  # type: ignore[misc]
    database.close()


def add(db: Database, n: int, start: int = 0) -> None:
    rows = [EventRow(1, f"m{i}", "track", "E", f"u{i}", None, "server", "secret", 1,
                     1_700_000_000_000 + i, 1_700_000_000_000 + i, json.dumps({"i": i}))
            for i in range(start, start + n)]
    with transaction(db.conn()) as conn:
        assert append_events(conn, rows) == n


class Recorder:
    """A step that records what it saw, and can fail on a chosen event."""

    name = "recorder"

    def __init__(self, fail_on: int | None = None) -> None:
        self.fail_on = fail_on

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        for event in events:
            if event.id == self.fail_on:
                raise RuntimeError("boom")
            # The value numbers the rows in the order they were written.
            conn.execute("INSERT INTO meta (key, value) VALUES "
                         "(?, CAST((SELECT count(*) FROM meta) AS TEXT))", (f"e{event.id}",))


def logged(db: Database) -> list[str]:
    """The keys Recorder writes for the events of the log, in log order (ids are not
    1, 2, 3 … on PostgreSQL: they carry their month, store/partitions.py)."""
    return [f"e{r[0]}" for r in db.conn().execute("SELECT id FROM events ORDER BY id")]


def seen(db: Database) -> list[str]:
    return [r[0] for r in db.conn().execute("SELECT key FROM meta WHERE key LIKE 'e%' "
                                        "ORDER BY CAST(value AS INTEGER)")]


def test_processor_applies_in_order_and_resumes_from_the_cursor(db: Database) -> None:
    add(db, 7)
    processor = Processor(db, [Recorder()], batch_size=3)
    assert [processor.run_once() for _ in range(4)] == [3, 3, 1, 0]
    add(db, 2, start=7)
    assert Processor(db, [Recorder()], batch_size=3).catch_up() == 2  # a new process
    assert seen(db) == logged(db) and len(logged(db)) == 9


def test_a_failing_step_leaves_nothing_half_applied(db: Database) -> None:
    add(db, 5)
    fourth = int(logged(db)[3][1:])
    processor = Processor(db, [StatsStep(), Recorder(fail_on=fourth)], batch_size=5)
    with pytest.raises(RuntimeError):
        processor.run_once()
    assert seen(db) == []
    assert db.conn().execute("SELECT count(*) FROM event_stats").fetchone()[0] == 0
    processor.steps = [StatsStep(), Recorder()]
    assert processor.run_once() == 5
    assert db.conn().execute("SELECT sum(count) FROM event_stats").fetchone()[0] == 5


def test_two_processors_never_apply_a_batch_twice(db: Database) -> None:
    add(db, 2000)
    processors = [Processor(db, [Recorder()], batch_size=50) for _ in range(3)]
    threads = [threading.Thread(target=p.catch_up) for p in processors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen(db) == logged(db) and len(logged(db)) == 2000


def test_batch_size_is_validated(db: Database) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        Processor(db, [], batch_size=0)
    with pytest.raises(ValueError, match="idle_batch_size"):
        Processor(db, [], batch_size=5, idle_batch_size=4)
    with pytest.raises(ValueError, match="slice_size"):
        Processor(db, [], slice_size=0)


def test_batches_are_bigger_while_ingest_is_quiet(db: Database) -> None:
    busy = [True]
    processor = Processor(db, [Recorder()], batch_size=3, idle_batch_size=8,
                          ingest_busy=lambda: busy[0])
    add(db, 20)
    assert processor.run_once() == 3
    busy[0] = False
    assert processor.run_once() == 8
    busy[0] = True
    assert processor.run_once() == 3
    assert seen(db) == logged(db)[:14]
    # With no ingest in the process (a command, a benchmark) the log is quiet.
    assert Processor(db, [StatsStep()], batch_size=3, idle_batch_size=8,
                     cursor="other").run_once() == 8


class Slices(Recorder):
    """A Recorder that also notes how many events each call handed it."""

    def __init__(self, fail_on: int | None = None) -> None:
        super().__init__(fail_on)
        self.sizes: list[int] = []

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        self.sizes.append(len(events))
        super().apply(conn, events)


def test_a_batch_is_applied_a_slice_at_a_time_in_one_transaction(db: Database) -> None:
    add(db, 12)
    step = Slices()
    processor = Processor(db, [step], batch_size=2, idle_batch_size=10, slice_size=3)
    assert processor.run_once() == 10
    assert step.sizes == [3, 3, 3, 1]
    assert processor.last_events == 10
    assert seen(db) == logged(db)[:10]
    assert processor.run_once() == 2  # the end of the log ends the batch
    assert step.sizes[4:] == [2]
    assert seen(db) == logged(db)


def test_a_failure_in_a_later_slice_undoes_the_whole_batch(db: Database) -> None:
    add(db, 10)
    ninth = int(logged(db)[8][1:])
    step = Slices(fail_on=ninth)
    processor = Processor(db, [StatsStep(), step], batch_size=2, idle_batch_size=10,
                          slice_size=4)
    with pytest.raises(RuntimeError):
        processor.run_once()
    assert step.sizes == [4, 4, 2]  # two slices applied before the third failed …
    assert seen(db) == []  # … and undone with it, the cursor unmoved
    assert db.conn().execute("SELECT count(*) FROM event_stats").fetchone()[0] == 0
    processor.steps = [StatsStep(), Recorder()]
    assert processor.run_once() == 10
    assert seen(db) == logged(db)


class Slow:
    """A step that takes at least 10 ms an event (at most 100 events/s)."""

    name = "slow"

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        time.sleep(0.01 * len(events))


def test_a_quiet_batch_holds_the_lock_about_idle_seconds(db: Database) -> None:
    processor = Processor(db, [Slow()], batch_size=2, idle_batch_size=50,
                          idle_seconds=0.05)
    add(db, 60)
    assert processor.run_once() == 50  # no rate known yet: idle_batch_size
    # At most 100 events/s: 0.05 s is at most 5 events, and never fewer than batch_size.
    assert 2 <= processor.run_once() <= 5
    assert processor.next_size(quiet=False) == 2


def _wait(predicate: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_supervisor_runs_workers_only_with_the_lease(db: Database) -> None:
    clock = FakeClock(1000.0)
    wake_a, wake_b = threading.Event(), threading.Event()
    a = Supervisor(db, clock, [(Processor(db, [Recorder()]), wake_a)],
                   lease_seconds=0.3, poll_interval=0.05, owner="a")
    b = Supervisor(db, clock, [(Processor(db, [Recorder()]), wake_b)],
                   lease_seconds=0.3, poll_interval=0.05, owner="b")
    a.start()
    assert _wait(lambda: a.holds_lease)
    b.start()
    add(db, 10)
    wake_a.set()
    assert _wait(lambda: len(seen(db)) == 10)
    assert not b.holds_lease
    a.stop()  # a clean stop releases the lease at once
    assert _wait(lambda: b.holds_lease)
    add(db, 5, start=10)
    wake_b.set()
    assert _wait(lambda: len(seen(db)) == 15)
    b.stop()
    assert seen(db) == logged(db) and len(logged(db)) == 15


def test_supervisor_keeps_going_after_a_worker_error(db: Database) -> None:
    class Flaky:
        name = "flaky"
        calls = 0

        def run_once(self) -> int:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise RuntimeError("transient")
            return 0

    sup = Supervisor(db, FakeClock(), [(Flaky(), threading.Event())],
                     lease_seconds=0.3, poll_interval=0.01)
    sup.start()
    try:
        assert _wait(lambda: Flaky.calls >= 2)
        assert sup.errors == 1
    finally:
        sup.stop()


def test_processor_rests_while_ingest_is_busy(db: Database) -> None:
    busy = [True]
    processor = Processor(db, [Recorder()], batch_size=5, ingest_busy=lambda: busy[0])
    add(db, 5)
    assert processor.run_once() == 5
    assert processor.pause() == pytest.approx(min(0.5, max(0.05, 3 * processor.last_batch_seconds)))
    processor.last_batch_seconds = 10.0
    assert processor.pause() == 0.5  # never longer than half a second
    busy[0] = False
    assert processor.pause() == 0.0
    assert Processor(db, []).pause() == 0.0


def test_other_workers_rest_as_long_as_their_work_took_while_ingest_is_busy() -> None:
    busy = [True]

    class Plain:
        name = "plain"

    class Own:
        name = "own"

        def pause(self) -> float:
            return 0.25

    assert courtesy(Plain(), 0.1, lambda: busy[0]) == 0.1
    assert courtesy(Plain(), 0.0, lambda: busy[0]) == 0.005  # longer than ingest's spin
    assert courtesy(Plain(), 9.0, lambda: busy[0]) == 0.5
    assert courtesy(Own(), 0.1, lambda: busy[0]) == 0.25  # the processor decides itself
    assert courtesy(Plain(), 0.1, None) == 0.0
    busy[0] = False
    assert courtesy(Plain(), 0.1, lambda: busy[0]) == 0.0


class Backlog:
    """A worker with endless work that holds the write lock for 20 ms a unit (a start-up's
    due timers)."""

    name = "backlog"

    def __init__(self, db: Database) -> None:
        self.conn = db.connect()
        self.units: list[tuple[float, float]] = []

    def run_once(self) -> int:
        with transaction(self.conn) as conn:
            started = time.monotonic()
            conn.execute("INSERT INTO meta (key, value) VALUES ('backlog', '1') "
                         "ON CONFLICT (key) DO UPDATE SET value = value + 1")
            time.sleep(0.02)
        self.units.append((started, time.monotonic()))
        return 1

    def close(self) -> None:
        self.conn.close()


@sqlite_only("one write lock")
def test_a_worker_with_a_backlog_lets_ingest_write_between_its_units(db: Database) -> None:
    """Ingest waits for SQLite's write lock in short steps; a worker that takes the lock
    again the moment it commits wins nearly every time (before: a write waited through
    dozens of units). While ingest is busy the workers rest after each unit, and each
    write waits for at most a unit or two."""
    writer = EventWriter(db)
    worker = Backlog(db)
    group = WorkerGroup([(worker, threading.Event())], poll_interval=1.0,
                        on_error=lambda: None,
                        ingest_busy=writer.busy)
    group.start()
    try:
        assert _wait(lambda: len(worker.units) >= 3)
        spans = []
        for i in range(20):
            started = time.monotonic()
            writer.write([EventRow(1, f"w{i}", "track", "E", "u", None, "server", "secret", 1,
                                   1_700_000_000_000, 1_700_000_000_000, "{}")])
            ended = time.monotonic()
            # The worker's units that began and ended while this write waited.
            spans.append(sum(started <= a and b <= ended for a, b in list(worker.units)))
    finally:
        group.stop()
        writer.close()
    assert max(spans) <= 3, spans

"""Background work inside `kanal serve`: the supervisor, its leases, and the processor.

Only one process at a time runs the singleton workers of a database (the processor and
its companions). The supervisor takes a lease row, renews it while alive, starts those
workers as threads while it holds the lease, and stops them if it loses it (another
process took over an expired lease). On PostgreSQL the dispatcher and the timers run
on every node instead, and wake-ups come from other nodes too (nodes.py).

The processor reads the event log from a durable cursor and hands each batch of new
events to its steps (stats, profiles, segments, journeys …), a slice of it at a time.
The steps' writes and the cursor move share one transaction, so a crash never
half-applies a batch and a restart resumes exactly after the last committed one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from .clock import Clock
from .errors import StorageError
from .nodes import Wakeups, Worker, WorkerGroup, node_id
from .store import leases
from .store.checkpoints import BackgroundCheckpoints
from .store.connection import DB_ERRORS, EVENTS, Connection
from .store.cursors import get_position, set_position
from .store.db import Database, transaction
from .store.dialect import POSTGRESQL
from .store.events import StoredEvent, events_after
from .store.partitions import ensure_ahead
from .store.profiles import widen_cache
from .store.stats import OWN_TYPE, add_counts

log = logging.getLogger("kanal.workers")

LEASE_NAME = leases.WORKERS
_MIN_PAUSE = 0.05
_MAX_PAUSE = 0.5
PROCESSOR_CURSOR = "processor"
SLICE = 1000
"""Events the processor's steps are handed at a time. A batch of up to 5,000 events
(app.IDLE_BATCH) is one transaction, so its commit writes each page it changed once,
but its events are read and applied 1,000 at a time: the Python objects of a slice
(its events' bodies, the profiles and claims the steps load for them: about 3.5 MB)
are freed before the next is read. Python's allocator keeps the memory of a batch's
peak resident (an arena goes back only when nothing in it is alive, and the caches
filled meanwhile leave a little in most of them): handed 5,000 events at once, the
processor's peak of about 17 MB stayed, and `kanal serve` held about 30 MB more at 1M
events with segments (#18)."""
_KANAL = "kanal"  # the key kind of Kanal's own events (profiles.step.KANAL_KEY_KIND)
_LEASE_ERRORS: tuple[type[Exception], ...] = (*DB_ERRORS, StorageError)
"""The database can't be reached or refused: the lease is not held this time."""


class Step(Protocol):
    """One part of the processor: applies a batch of events inside its transaction."""

    name: str

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        """Write what `events` change; never commit (the processor does)."""
        ...

    # A step may also have `background(conn) -> bool`: work of its own the processor
    # runs when there are no events (in a transaction of its own), True when it did some.


class StatsStep:
    """Daily event counts by origin and type (the overview's events-per-day chart)."""

    name = "stats"

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        """Count the batch by UTC day, origin and type (OWN_TYPE for Kanal's own)."""
        counts: Counter[tuple[int, str, str]] = Counter()
        for event in events:
            kind = OWN_TYPE if event.key_kind == _KANAL else event.type
            counts[(event.timestamp // 86_400_000, event.origin, kind)] += 1
        days: dict[int, str] = {}
        by_day: Counter[tuple[str, str, str]] = Counter()
        for (day, origin, kind), n in counts.items():
            if day not in days:
                days[day] = datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d")
            by_day[(days[day], origin, kind)] += n
        add_counts(conn, by_day)


class Processor:
    """Feeds new events to the steps; the cursor moves in the same transaction."""

    name = "processor"
    wakes_on = (EVENTS,)
    """Woken by other processes' hints that events were appended."""

    def __init__(self, db: Database, steps: Sequence[Step], *, batch_size: int = 500,
                 idle_batch_size: int | None = None, idle_seconds: float = 1.0,
                 slice_size: int = SLICE, cursor: str = PROCESSOR_CURSOR,
                 ingest_busy: Callable[[], bool] | None = None) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if idle_batch_size is not None and idle_batch_size < batch_size:
            raise ValueError(f"idle_batch_size must be at least batch_size ({batch_size}), "
                             f"not {idle_batch_size!r}")
        if slice_size < 1:
            raise ValueError("slice_size must be at least 1")
        self.db = db
        self.steps = list(steps)
        self.batch_size = batch_size
        self.idle_batch_size = idle_batch_size or batch_size
        """Events a batch takes while ingest is quiet: on a big database a batch's pages
        are spread over the tables, and more events a commit write fewer pages each."""
        self.slice_size = slice_size
        """Events the steps are handed at a time: a batch is read and applied a slice
        after the other, in its one transaction (see SLICE)."""
        self.idle_seconds = idle_seconds
        """About how long a quiet-time batch may hold the write lock: fewer events than
        idle_batch_size when the last batch's rate says they would take longer (a
        request arriving meanwhile waits for the commit)."""
        self._rate: float | None = None  # events/s of the last batch of events
        self.cursor = cursor
        self.ingest_busy = ingest_busy
        self.last_batch_seconds = 0.0
        self.last_events = 0
        """Events the last `run_once` applied (it returns 1 for a turn of idle work)."""
        self._conn: Connection | None = None
        self._checkpoints: BackgroundCheckpoints | None = None
        """On SQLite, the thread that copies the processor's commits out of the WAL."""

    def pause(self) -> float:
        """Seconds to rest after a batch: ingest goes first while it is busy.

        Ingest and the processor share one interpreter. While requests keep arriving the
        processor rests three times as long as its last batch took (a quarter of the
        CPU), and at least 50 ms so that events gather into batches worth a commit: a
        burst is answered at full speed and its effects follow a little later. When
        ingest is quiet the processor runs flat out and catches up.
        """
        if self.ingest_busy is None or not self.ingest_busy():
            return 0.0
        # At least _MIN_PAUSE, so that events gather into batches worth a commit.
        return min(_MAX_PAUSE, max(_MIN_PAUSE, 3 * self.last_batch_seconds))

    def run_once(self) -> int:
        """Apply the next batch of events; return how many were applied (with no events,
        1 when a step did idle work, else 0)."""
        started = time.monotonic()
        try:
            return self._run_once()
        finally:
            self.last_batch_seconds = time.monotonic() - started
            if self.last_events:
                self._rate = self.last_events / max(self.last_batch_seconds, 1e-6)

    def next_size(self, quiet: bool) -> int:
        """Events the next batch may take: batch_size while ingest is busy, else
        idle_batch_size or what the last batch's rate applies in idle_seconds, whichever
        is less (never below batch_size)."""
        if not quiet:
            return self.batch_size
        if self._rate is None:
            return self.idle_batch_size
        return max(self.batch_size, min(self.idle_batch_size,
                                        int(self._rate * self.idle_seconds)))

    def _run_once(self) -> int:
        if self._conn is None:
            self._conn = self.db.connect()
            widen_cache(self._conn)
            self._checkpoints = BackgroundCheckpoints.of(self.db, self._conn)
        self.last_events = 0
        if self._checkpoints is not None:
            self._checkpoints.before_batch()
        done = self._apply_next(self._conn)
        if done and self._checkpoints is not None:
            self._checkpoints.after_commit()
        return done

    def _apply_next(self, conn: Connection) -> int:
        with transaction(conn):
            # Read the cursor inside the write transaction: even two processors racing
            # on one database (a lease handed over mid-batch) can't apply a batch twice.
            position = get_position(conn, self.cursor)
            quiet = self.ingest_busy is None or not self.ingest_busy()
            size = self.next_size(quiet)
            applied = 0
            while applied < size:
                wanted = min(self.slice_size, size - applied)
                events = events_after(conn, position, wanted)
                if not events:
                    break
                for step in self.steps:
                    step.apply(conn, events)
                position = events[-1].id
                applied += len(events)
                if len(events) < wanted:  # the end of the log
                    break
                del events  # freed before the next slice is read
            if not applied:
                # Idle: steps with work of their own (a rebuild of kept figures) do some.
                worked = False
                for step in self.steps:
                    background = getattr(step, "background", None)
                    if background is not None and background(conn):
                        worked = True
                return 1 if worked else 0
            set_position(conn, self.cursor, position)
        self.last_events = applied
        return applied

    def catch_up(self) -> int:
        """Run until the log is exhausted (and the steps' idle work is done); return how
        many events were applied."""
        total = 0
        while self.run_once():
            total += self.last_events
        return total

    def settle(self) -> None:
        """Wait until the thread has copied the last commit out of the WAL (SQLite;
        nothing on PostgreSQL): what a benchmark times after the last batch."""
        if self._checkpoints is not None:
            self._checkpoints.wait()

    def close(self) -> None:
        """Close the processor's connection (after the last copy out of the WAL)."""
        if self._checkpoints is not None:
            self._checkpoints.close()
            self._checkpoints = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def describe_owner(owner: str) -> str:
    """A lease owner (`host:pid:nonce`) as words: `process 4242 on host shop-1`."""
    parts = owner.split(":")
    if owner.startswith("rebuild:") and len(parts) >= 3:
        return f"`kanal profiles rebuild` (process {parts[2]} on host {parts[1]})"
    if len(parts) >= 3 and parts[-2].isdigit():
        return f"process {parts[-2]} on host {':'.join(parts[:-2])}"
    return f"lease owner {owner!r}"


class Supervisor:
    """Runs a node's background work: the workers only one process runs at a time while
    it holds their lease, and, on PostgreSQL, the shared workers on every node.

    Every tick (a third of the lease time) renews this node's lease and takes or renews
    the singleton workers' lease (store/leases.py). The shared workers (the dispatcher
    and the timers: `shared = True`) run as long as the singleton lease is held by a
    node, this one or another; they stop while `kanal profiles rebuild` holds it. On
    SQLite every worker is a singleton, as it always was. The lease holder also makes
    the event log's partitions of the coming months (store/partitions.py), once an
    hour. `ingest_busy` (the ingest writer's `busy`) makes the workers yield to ingest
    on SQLite (nodes.courtesy).
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        workers: Sequence[tuple[Worker, threading.Event]],
        *,
        poll_interval: float = 1.0,
        lease_seconds: float = 15.0,
        owner: str | None = None,
        notify: Callable[[str], None] | None = None,
        ingest_busy: Callable[[], bool] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.workers = list(workers)
        self.poll_interval = poll_interval
        self.lease_seconds = lease_seconds
        self.owner = owner or node_id()
        self.share = db.engine == POSTGRESQL
        """Shared workers run on every node (PostgreSQL); else all are singletons."""
        shared = [(w, e) for w, e in self.workers if self.share and getattr(w, "shared", False)]
        # On SQLite ingest waits for the same write lock as the workers: they yield to
        # it (nodes.courtesy). PostgreSQL's ingest appends beside them.
        busy = ingest_busy if db.engine != POSTGRESQL else None
        self.singles = WorkerGroup([p for p in self.workers if p not in shared],
                                   poll_interval=poll_interval, on_error=self._failed,
                                   ingest_busy=busy)
        self.shared = WorkerGroup(shared, poll_interval=poll_interval,
                                  on_error=self._failed, ingest_busy=busy)
        self.wakeups = Wakeups(db, self.workers)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Connection | None = None
        self.holds_lease = False
        self.errors = 0
        self.notify = notify or (lambda line: log.info("%s", line))
        """Told, in a plain line, when this process runs the workers or only ingests."""
        self.decided = threading.Event()
        """Set after the first attempt to take the lease (`holds_lease` is then known)."""
        self._waiting_for: str | None = None
        self._holder: str | None = None
        self._expires: float | None = None
        self._maintained = float("-inf")

    def _failed(self) -> None:
        self.errors += 1

    def start(self) -> None:
        """Start the supervisor thread (it starts the workers once it has the lease)."""
        self.wakeups.start()
        self._thread = threading.Thread(target=self._main, name="kanal-supervisor",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the workers after their current unit of work and give up the leases."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.wakeups.stop()

    def _main(self) -> None:
        try:
            while not self._stop.is_set():
                self._tick()
                self._stop.wait(self._next_tick())
        finally:
            self.singles.stop()
            self.shared.stop()
            if self._conn is not None:
                try:
                    if self.holds_lease:
                        leases.release(self._conn, LEASE_NAME, self.owner)
                    leases.release(self._conn, leases.NODE + self.owner, self.owner)
                except DB_ERRORS:
                    log.exception("could not release the workers' lease")
                self._conn.close()

    def _tick(self) -> None:
        try:
            if self._conn is None:
                self._conn = self.db.connect()
            held = leases.tick(self._conn, self.owner, self.clock.now(), self.lease_seconds)
        except _LEASE_ERRORS:
            log.exception("could not renew the workers' lease")
            held = False
            if self._conn is not None:  # a broken connection is opened anew next time
                self._conn.close()
                self._conn = None
        if held and not self.holds_lease:
            if self._waiting_for is not None:
                self.notify(f"Took over the workers' lease from {self._waiting_for}: this "
                            f"process now runs the workers ({self._names(self.singles)}).")
            log.info("took the workers' lease (%s)", self.owner)
            self.singles.start()
        elif not held and self.holds_lease:
            log.warning("lost the workers' lease; stopping workers")
            self.singles.stop()
        if not held:
            self._note_holder()
        self.holds_lease = held
        self._share(held)
        if held:
            self._maintain()
        self.decided.set()

    def _next_tick(self) -> float:
        """Seconds to the next tick: a third of the lease time, or, while another node
        holds the lease, the moment it expires if that comes sooner (a dead holder is
        replaced as soon as its lease runs out, not up to a third of a lease later)."""
        pause = self.lease_seconds / 3
        if not self.holds_lease and self._expires is not None:
            pause = min(pause, self._expires - self.clock.now() + 0.01)
        return max(pause, 0.05)

    def _share(self, held: bool) -> None:
        """Run the shared workers while a node holds the lease (not a rebuild)."""
        if not self.shared.workers:
            return
        rebuilding = not held and (self._holder or "").startswith("rebuild:")
        if not rebuilding and not self.shared.running and (held or self._holder):
            self.shared.start()
        elif rebuilding and self.shared.running:
            log.warning("`kanal profiles rebuild` holds the workers' lease; pausing %s",
                        self._names(self.shared))
            self.shared.stop()

    def _maintain(self) -> None:
        """The lease holder's hourly chores: the coming months' event partitions."""
        if self._conn is None or time.monotonic() - self._maintained < 3600:
            return
        try:
            with transaction(self._conn) as conn:
                made = ensure_ahead(conn, int(self.clock.now() * 1000))
        except DB_ERRORS:
            log.exception("could not make the event log's partitions ahead")
            return
        self._maintained = time.monotonic()
        if made:
            log.info("made event log partitions %s", ", ".join(made))

    @staticmethod
    def _names(group: WorkerGroup) -> str:
        return ", ".join(w.name for w, _ in group.workers)

    def _note_holder(self) -> None:
        """Say once which process holds the lease while this one only ingests (or runs
        only the shared workers)."""
        self._holder = self._expires = None
        if self._conn is None:  # the database can't be reached just now
            return
        try:
            found = leases.holder(self._conn, LEASE_NAME)
        except DB_ERRORS:
            return
        if found is not None and found[1] > self.clock.now():
            self._holder, self._expires = found
        holder = describe_owner(found[0]) if found else "another process"
        if holder != self._waiting_for:
            self._waiting_for = holder
            doing = (f"Sharing the work: this process runs {self._names(self.shared)}; "
                     f"{holder} holds the lease of the other workers" if self.shared.workers
                     else f"Ingesting only: {holder} holds the workers' lease")
            self.notify(f"{doing} on this database. This process takes them over if that "
                        f"one stops (its lease expires {self.lease_seconds:g} s after its "
                        "last renewal).")

"""Background work inside `kanal serve`: the supervisor, its lease, and the processor.

Only one process may run workers against a database. The supervisor takes a lease row,
renews it while alive, starts the workers as threads while it holds the lease, and
stops them if it loses it (another process took over an expired lease).

The processor reads the event log from a durable cursor and hands each batch of new
events to its steps (stats today; profiles, segments and journeys later). The steps'
writes and the cursor move share one transaction, so a crash never half-applies a
batch and a restart resumes exactly after the last committed one.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from .clock import Clock
from .errors import StorageError
from .store import leases
from .store.connection import DB_ERRORS, Connection
from .store.cursors import get_position, set_position
from .store.db import Database, transaction
from .store.events import StoredEvent, events_after
from .store.profiles import widen_cache
from .store.stats import add_counts

log = logging.getLogger("kanal.workers")

LEASE_NAME = "workers"
_MIN_PAUSE = 0.05
_MAX_PAUSE = 0.5
PROCESSOR_CURSOR = "processor"
_LEASE_ERRORS: tuple[type[Exception], ...] = (*DB_ERRORS, StorageError)
"""The database can't be reached or refused: the lease is not held this time."""


class Step(Protocol):
    """One part of the processor: applies a batch of events inside its transaction."""

    name: str

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        """Write what `events` change; never commit (the processor does)."""
        ...


def _no_pause() -> float:
    return 0.0


class Worker(Protocol):
    """Something the supervisor runs in a loop on its own thread."""

    name: str

    def run_once(self) -> int:
        """Do one unit of work; return how much was done (0 = idle, wait for a wake-up)."""
        ...


class StatsStep:
    """Daily event counts by origin and type (the overview's events-per-day chart)."""

    name = "stats"

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        """Count the batch by UTC day, origin and type."""
        counts: Counter[tuple[int, str, str]] = Counter()
        for event in events:
            counts[(event.timestamp // 86_400_000, event.origin, event.type)] += 1
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

    def __init__(self, db: Database, steps: Sequence[Step], *, batch_size: int = 500,
                 cursor: str = PROCESSOR_CURSOR,
                 ingest_busy: Callable[[], bool] | None = None) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.db = db
        self.steps = list(steps)
        self.batch_size = batch_size
        self.cursor = cursor
        self.ingest_busy = ingest_busy
        self.last_batch_seconds = 0.0
        self._conn: Connection | None = None

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
        """Apply the next batch of events; return how many were applied."""
        started = time.monotonic()
        try:
            return self._run_once()
        finally:
            self.last_batch_seconds = time.monotonic() - started

    def _run_once(self) -> int:
        if self._conn is None:
            self._conn = self.db.connect()
            widen_cache(self._conn)
        with transaction(self._conn) as conn:
            # Read the cursor inside the write transaction: even two processors racing
            # on one database (a lease handed over mid-batch) can't apply a batch twice.
            position = get_position(conn, self.cursor)
            events = events_after(conn, position, self.batch_size)
            if not events:
                return 0
            for step in self.steps:
                step.apply(conn, events)
            set_position(conn, self.cursor, events[-1].id)
        return len(events)

    def catch_up(self) -> int:
        """Run until the log is exhausted; return how many events were applied."""
        total = 0
        while n := self.run_once():
            total += n
        return total

    def close(self) -> None:
        """Close the processor's connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass
class _Running:
    worker: Worker
    wake: threading.Event
    thread: threading.Thread


def describe_owner(owner: str) -> str:
    """A lease owner (`host:pid:nonce`) as words: `process 4242 on host shop-1`."""
    parts = owner.split(":")
    if owner.startswith("rebuild:") and len(parts) >= 3:
        return f"`kanal profiles rebuild` (process {parts[2]} on host {parts[1]})"
    if len(parts) >= 3 and parts[-2].isdigit():
        return f"process {parts[-2]} on host {':'.join(parts[:-2])}"
    return f"lease owner {owner!r}"


class Supervisor:
    """Holds the workers' lease and runs each worker on a thread while it has it."""

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
    ) -> None:
        self.db = db
        self.clock = clock
        self.workers = list(workers)
        self.poll_interval = poll_interval
        self.lease_seconds = lease_seconds
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._workers_stop = threading.Event()
        self._running: list[_Running] = []
        self._thread: threading.Thread | None = None
        self._conn: Connection | None = None
        self.holds_lease = False
        self.errors = 0
        self.notify = notify or (lambda line: log.info("%s", line))
        """Told, in a plain line, when this process runs the workers or only ingests."""
        self.decided = threading.Event()
        """Set after the first attempt to take the lease (`holds_lease` is then known)."""
        self._waiting_for: str | None = None

    def start(self) -> None:
        """Start the supervisor thread (it starts the workers once it has the lease)."""
        self._thread = threading.Thread(target=self._main, name="kanal-supervisor",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the workers after their current unit of work and give up the lease."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _main(self) -> None:
        try:
            while not self._stop.is_set():
                self._tick()
                self._stop.wait(max(self.lease_seconds / 3, 0.05))
        finally:
            self._stop_workers()
            if self.holds_lease and self._conn is not None:
                try:
                    leases.release(self._conn, LEASE_NAME, self.owner)
                except DB_ERRORS:
                    log.exception("could not release the workers' lease")
            if self._conn is not None:
                self._conn.close()

    def _tick(self) -> None:
        try:
            if self._conn is None:
                self._conn = self.db.connect()
            held = leases.acquire(self._conn, LEASE_NAME, self.owner, self.clock.now(),
                                  self.lease_seconds)
        except _LEASE_ERRORS:
            log.exception("could not renew the workers' lease")
            held = False
            if self._conn is not None:  # a broken connection is opened anew next time
                self._conn.close()
                self._conn = None
        if held and not self.holds_lease:
            if self._waiting_for is not None:
                self.notify(f"Took over the workers' lease from {self._waiting_for}: this "
                            "process now runs the workers (processor, timers, dispatcher).")
            log.info("took the workers' lease (%s)", self.owner)
            self._start_workers()
        elif not held and self.holds_lease:
            log.warning("lost the workers' lease; stopping workers")
            self._stop_workers()
        if not held:
            self._note_holder()
        self.holds_lease = held
        self.decided.set()

    def _note_holder(self) -> None:
        """Say once which process holds the lease while this one only ingests."""
        if self._conn is None:  # the database can't be reached just now
            return
        try:
            found = leases.holder(self._conn, LEASE_NAME)
        except DB_ERRORS:
            return
        holder = describe_owner(found[0]) if found else "another process"
        if holder != self._waiting_for:
            self._waiting_for = holder
            self.notify(f"Ingesting only: {holder} holds the workers' lease on this "
                        "database. This process takes the workers over if that one "
                        f"stops (its lease expires {self.lease_seconds:g} s after its "
                        "last renewal).")

    def _start_workers(self) -> None:
        self._workers_stop = threading.Event()
        for worker, wake in self.workers:
            thread = threading.Thread(target=self._loop, args=(worker, wake, self._workers_stop),
                                      name=f"kanal-{worker.name}", daemon=True)
            self._running.append(_Running(worker, wake, thread))
            thread.start()

    def _stop_workers(self) -> None:
        self._workers_stop.set()
        for running in self._running:
            running.wake.set()
        for running in self._running:
            running.thread.join(30)
            close = getattr(running.worker, "close", None)
            if close is not None and not running.thread.is_alive():
                try:
                    close()  # connections, channel sockets
                except Exception:
                    log.exception("worker %s did not close cleanly", running.worker.name)
        self._running = []

    def _loop(self, worker: Worker, wake: threading.Event, stop: threading.Event) -> None:
        failures = 0
        while not stop.is_set():
            wake.clear()  # before the work: a wake-up during it is not lost
            try:
                done = worker.run_once()
                failures = 0
            except Exception as exc:
                self.errors += 1
                failures += 1
                log.exception("worker %s failed; retrying", worker.name)
                close = getattr(worker, "close", None)
                if isinstance(exc, DB_ERRORS) and close is not None:
                    close()  # its connection may be broken: it opens a new one next time
                stop.wait(min(30.0, 0.5 * 2 ** min(failures, 6)))
                continue
            if not done:
                wake.wait(self.poll_interval)
            elif rest := getattr(worker, "pause", _no_pause)():
                stop.wait(rest)

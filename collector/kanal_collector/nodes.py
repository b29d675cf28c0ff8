"""What one `kanal serve` node runs its background work with: worker threads and
wake-ups from other nodes.

`WorkerGroup` runs a set of workers, each in a loop on a thread of its own, until it is
stopped: the supervisor (workers.py) has one group for the workers only the lease
holder runs and one for the workers every node runs. While ingest waits to write
(SQLite's one write lock), a worker rests after each unit of work about as long as the
unit took, so a backlog of work (a start-up's due timers) can't keep requests waiting.
`Wakeups` listens for the hints other processes give when they commit work (PostgreSQL's
LISTEN/NOTIFY: store/postgres.py) and wakes the workers that wait for that kind of work.
A hint is only ever a wake-up: every worker also polls, so a lost hint (a dropped
connection, a listener that is reconnecting) delays work by one poll interval, never
loses it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .store.connection import DB_ERRORS
from .store.db import Database
from .store.dialect import POSTGRESQL

log = logging.getLogger("kanal.workers")

_RECONNECT = 5.0
"""Seconds between attempts to listen again after the connection failed."""


class Worker(Protocol):
    """Something the supervisor runs in a loop on its own thread.

    Optional attributes: `shared = True` (it runs on every node of a PostgreSQL
    database, not only on the lease holder: its claims keep the nodes apart),
    `wakes_on` (the hint topics that wake it: store.connection.TOPICS), `pause()`
    (seconds to rest after a unit of work) and `close()`.
    """

    name: str

    def run_once(self) -> int:
        """Do one unit of work; return how much was done (0 = idle, wait for a wake-up)."""
        ...


def node_id() -> str:
    """A new node's id: `host:pid:nonce` (workers.describe_owner reads it back)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


_MIN_YIELD = 0.005
"""Seconds a worker rests at least while ingest is busy: more than the longest step of
ingest's wait for the write lock (store/connection.py, 2 ms), so it gets the lock."""
_MAX_YIELD = 0.5
"""Seconds a worker rests at most while ingest is busy."""


def courtesy(worker: Any, took: float, ingest_busy: Callable[[], bool] | None) -> float:
    """Seconds `worker` rests after a unit of work that took `took` seconds.

    A worker with a `pause()` of its own (the processor) decides itself. Any other rests
    while ingest is busy, as long as its unit took (between _MIN_YIELD and _MAX_YIELD):
    ingest then holds the write lock at least half the time. Otherwise it goes on.
    """
    own = getattr(worker, "pause", None)
    if own is not None:
        return float(own())
    if ingest_busy is not None and ingest_busy():
        return min(_MAX_YIELD, max(_MIN_YIELD, took))
    return 0.0


@dataclass
class _Running:
    worker: Worker
    wake: threading.Event
    thread: threading.Thread


class WorkerGroup:
    """Workers run together: each in a loop on its own thread, from start to stop."""

    def __init__(self, workers: Sequence[tuple[Worker, threading.Event]], *,
                 poll_interval: float, on_error: Callable[[], None],
                 ingest_busy: Callable[[], bool] | None = None) -> None:
        self.workers = list(workers)
        self.poll_interval = poll_interval
        self.on_error = on_error
        self.ingest_busy = ingest_busy
        """True while ingest waits for or holds the write lock (the workers yield)."""
        self._stop = threading.Event()
        self._running: list[_Running] = []

    @property
    def running(self) -> bool:
        """True between `start` and `stop`."""
        return bool(self._running)

    def start(self) -> None:
        """Start a thread per worker."""
        self._stop = threading.Event()
        for worker, wake in self.workers:
            thread = threading.Thread(target=self._loop, args=(worker, wake, self._stop),
                                      name=f"kanal-{worker.name}", daemon=True)
            self._running.append(_Running(worker, wake, thread))
            thread.start()

    def stop(self) -> None:
        """Stop every worker after its current unit of work and close it."""
        self._stop.set()
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
                started = time.monotonic()
                done = worker.run_once()
                took = time.monotonic() - started
                failures = 0
            except Exception as exc:
                self.on_error()
                failures += 1
                log.exception("worker %s failed; retrying", worker.name)
                close = getattr(worker, "close", None)
                if isinstance(exc, DB_ERRORS) and close is not None:
                    close()  # its connection may be broken: it opens a new one next time
                stop.wait(min(30.0, 0.5 * 2 ** min(failures, 6)))
                continue
            if not done:
                wake.wait(self.poll_interval)
            elif rest := courtesy(worker, took, self.ingest_busy):
                stop.wait(rest)


class Wakeups:
    """Listens for other processes' hints and sets the wake events waiting for them
    (PostgreSQL only: on SQLite one process runs every worker and wakes them itself)."""

    def __init__(self, db: Database, workers: Sequence[tuple[Any, threading.Event]]) -> None:
        self.db = db
        self.waiting: dict[str, list[threading.Event]] = {}
        for worker, wake in workers:
            for topic in getattr(worker, "wakes_on", ()):
                self.waiting.setdefault(topic, []).append(wake)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.heard = 0
        """Hints received so far (tests and logs)."""

    def start(self) -> None:
        """Start listening on a thread of its own (nothing to do on SQLite)."""
        if self.db.engine != POSTGRESQL or not self.waiting:
            return
        self._thread = threading.Thread(target=self._main, name="kanal-wakeups",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening (within a second)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _main(self) -> None:
        from .store.postgres import Listener

        while not self._stop.is_set():
            try:
                listener = Listener(self.db.target, sorted(self.waiting))
            except DB_ERRORS:
                log.warning("can't listen for other nodes' wake-ups; polling meanwhile")
                self._stop.wait(_RECONNECT)
                continue
            try:
                # Work committed while nobody listened is found by the workers' polls.
                while not self._stop.is_set():
                    for topic in listener.wait(1.0):
                        self.heard += 1
                        for wake in self.waiting.get(topic, ()):
                            wake.set()
            except DB_ERRORS:
                log.warning("lost the wake-up connection; polling until it is back")
                self._stop.wait(_RECONNECT)
            finally:
                listener.close()

"""Group commit: concurrent requests share one write transaction and one fsync.

A request appends its rows to a queue. If no commit is running, it becomes the leader:
it takes everything queued so far and commits it. Requests that arrive meanwhile wait;
when the commit ends they are all woken at once, and the first whose rows are still
queued leads the next commit, for everyone queued by then. A request whose rows were
committed by someone else just returns. A 200 is only sent after its commit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import StorageError
from ..store.connection import DB_ERRORS, Connection
from ..store.db import Database, transaction
from ..store.events import EventRow, FailedRow, append_events, append_failed


@dataclass(slots=True)
class _Pending:
    rows: Sequence[EventRow]
    failed: Sequence[FailedRow]
    done: bool = False
    stored: int = 0
    error: BaseException | None = None


class EventWriter:
    """Appends events for many threads at once, one transaction per group."""

    def __init__(self, db: Database, on_commit: Callable[[], None] | None = None) -> None:
        self._db = db
        self._on_commit = on_commit
        self._queue: list[_Pending] = []
        # Waiters are woken together (notify_all) rather than handed a lock one by one:
        # a group of N requests would otherwise pay N wake-ups in a row before the
        # next leader could start.
        self._changed = threading.Condition(threading.Lock())
        self._committing = False
        self._conn: Connection | None = None
        self.commits = 0
        self.last_commit = 0.0

    def write(self, rows: Sequence[EventRow], failed: Sequence[FailedRow] = ()) -> int:
        """Store rows (and failed rows) durably; return how many events were new.

        Raises StorageError when the database refused the write: nothing of it is kept.
        """
        item = _Pending(rows, failed)
        group: list[_Pending] = []
        with self._changed:
            self._queue.append(item)
            while self._committing and not item.done:
                self._changed.wait()
            if not item.done:  # lead: commit everything queued so far
                self._committing = True
                group, self._queue = self._queue, []
        if group:
            try:
                self._commit(group)
            finally:
                with self._changed:
                    self._committing = False
                    self._changed.notify_all()
        if item.error is not None:
            raise StorageError(f"could not store events: {item.error}") from item.error
        return item.stored

    def _commit(self, group: list[_Pending]) -> None:
        try:
            if self._conn is None:
                self._conn = self._db.connect_spinning()
            # Ingest only appends: on PostgreSQL it needs no writer lock (store/postgres.py).
            with transaction(self._conn, spin=self._db.busy_timeout, writer=False) as conn:
                for item in group:
                    item.stored = append_events(conn, item.rows)
                    if item.failed:
                        append_failed(conn, item.failed)
        except Exception as exc:  # every waiter must learn that its rows are not stored
            for item in group:
                item.error = exc
            if self._conn is not None and isinstance(exc, DB_ERRORS):
                # A broken connection (disk gone, file replaced) is reopened next time.
                self._conn.close()
                self._conn = None
        finally:
            for item in group:
                item.done = True
        self.commits += 1
        self.last_commit = time.monotonic()
        if self._on_commit is not None and any(i.stored for i in group):
            self._on_commit()

    def busy(self, window: float = 0.05) -> bool:
        """True while writes wait or are being committed, or when events were committed
        within the last `window` seconds.

        Writes that wait count: while the processor holds the write lock, ingest can't
        commit at all, and a quiet spell of commits then means ingest is stuck, not idle.
        """
        return (self._committing or bool(self._queue)
                or time.monotonic() - self.last_commit < window)

    def close(self) -> None:
        """Close the writer's connection (after the commit under way, if any)."""
        with self._changed:
            while self._committing:
                self._changed.wait()
            if self._conn is not None:
                self._conn.close()
                self._conn = None

"""The processor's checkpoints on SQLite, copied on a thread beside it.

In WAL mode every commit appends the pages it changed to the `-wal` file, and a
checkpoint copies them back into the database file and syncs both files. By default the
connection whose commit takes the WAL past 1,000 pages does that at once, inside its
commit. On a big database a processor batch changes a page or more per person it touches
in each per-person table (the profile row, its timeline, its touchpoints, …), and
copying and syncing those pages took about as long as applying the batch (#18: 20,000
events on top of 1M events ran at 0.55× the rate of the same events on an empty
database, 0.67× with the copy on this thread; on top of 10M 0.24× and 0.35×).

`BackgroundCheckpoints` gives the processor's connection a second connection and a
thread: after each commit of the processor the thread copies the WAL's new pages (a
PASSIVE checkpoint: it never waits for a reader or a writer) while the processor applies
the next batch. Two things follow from the copy no longer being the committer's:

- The WAL starts over from its beginning only when a writer begins with every page
  copied and no reader left on the WAL; a processor working back to back is always such
  a reader (it begins its next batch while the copy of the last one runs). So once the
  WAL has grown past 64 MiB or an eighth of the database (at most 256 MiB) the processor
  waits for the copy before its next batch, and that batch's commit starts the WAL over
  (the file is cut back to 64 MiB then: `journal_size_limit`, store/connection.py).
  Nobody else waits: unlike a RESTART checkpoint, which would hold ingest back until
  every reader has finished.
- The processor's commits need not sync the WAL themselves (synchronous=NORMAL): the
  thread syncs it before every copy, and so does any FULL commit after them (ingest's,
  the dispatcher's, in one file they all sync what came before). A power cut before
  either can only take back the processor's last batches and its cursor with them: they
  are applied again from the event log, which ingest synced before it answered. Nothing
  is sent on their account before the dispatcher's own synced commit claims the send.

The other connections of `kanal serve` checkpoint only past `SAFETY_PAGES` (their commits
are small; left at 1,000 pages, ingest's next commit after a processor batch would copy
it inside a request). Past that, any connection checkpoints at once, as before: the net
under a thread that fails. On PostgreSQL there is no WAL file of ours to copy: nothing.
"""

from __future__ import annotations

import logging
import threading

from .connection import Connection, connect_sqlite
from .db import Database
from .dialect import SQLITE

log = logging.getLogger("kanal.checkpoints")

RESTART_PAGES = 16_384
"""WAL pages (64 MiB at SQLite's 4 KiB pages) past which the processor starts the WAL
over before its next batch, or an eighth of the database's pages (WAL_SHARE) when that is
more, up to MAX_RESTART_PAGES: a bigger WAL lets more batches be copied while the next
is applied, a smaller one keeps the disk the WAL holds small beside the database's."""

WAL_SHARE = 8
"""The WAL may grow to the database's pages over this before it starts over."""

MAX_RESTART_PAGES = 65_536
"""256 MiB: the most the WAL grows to (and one batch) before it starts over."""

SAFETY_PAGES = 2 * MAX_RESTART_PAGES
"""WAL pages past which any connection checkpoints in its own commit (SQLite's
`wal_autocheckpoint`; its default is 1,000)."""


class BackgroundCheckpoints:
    """Copies a writer's commits from the WAL into the database file on a thread."""

    def __init__(self, db: Database, writer: Connection, *,
                 restart_pages: int = RESTART_PAGES) -> None:
        if restart_pages < 1:
            raise ValueError(f"restart_pages must be at least 1, not {restart_pages!r}")
        self.restart_pages = restart_pages
        """The least WAL pages the WAL starts over at (see RESTART_PAGES)."""
        self.wal_pages = 0
        """Pages in the WAL at the last copy (since it last started over)."""
        self.limit = restart_pages
        """The WAL pages it starts over at, for the database's size at the last copy."""
        self.copies = 0
        """Checkpoints the thread has run (tests, logs)."""
        writer.execute(f"PRAGMA wal_autocheckpoint={SAFETY_PAGES}")
        if db.synchronous.upper() in ("FULL", "EXTRA"):
            writer.execute("PRAGMA synchronous=NORMAL")
        # Its own, not one `db` hands out: `Database.close` closes those from its own
        # thread, and closing a connection while this thread checkpoints on it crashes.
        # `db.close` stops the thread instead (a processor nobody closed: tests).
        self._conn = connect_sqlite(db.target, synchronous=db.synchronous,
                                    busy_timeout=db.busy_timeout)
        self._forget = db.on_close(self.close)
        self._asked = 0
        self._done = 0
        self._closing = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._main, name="kanal-checkpoints",
                                        daemon=True)
        self._thread.start()

    @classmethod
    def of(cls, db: Database, writer: Connection) -> BackgroundCheckpoints | None:
        """Background checkpoints for `writer` on SQLite; None on PostgreSQL."""
        return cls(db, writer) if db.engine == SQLITE else None

    def after_commit(self) -> None:
        """The writer committed: copy its pages."""
        with self._cond:
            self._asked += 1
            self._cond.notify_all()

    def wait(self) -> None:
        """Until every copy asked for so far has been made."""
        with self._cond:
            self._cond.wait_for(lambda: self._done >= self._asked or self._closing)

    def before_batch(self) -> None:
        """Past `limit`, wait for the copy before the writer's next batch: it then
        begins with every page copied, and its commit starts the WAL over (when no
        reader began before the copy ended and still reads)."""
        if self.wal_pages < self.limit:
            return
        self.wait()
        self.wal_pages = 0  # until the next copy tells

    def close(self) -> None:
        """Make the last copy asked for, stop the thread and close its connection (once;
        again does nothing)."""
        self.wait()
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        self._forget()
        self._thread.join()
        self._conn.close()

    def _main(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._asked > self._done or self._closing)
                if self._closing:
                    return
                asked = self._asked
            try:
                _busy, pages, _copied = self._conn.execute(
                    "PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                size = int(self._conn.execute("PRAGMA page_count").fetchone()[0])
                self.limit = max(self.restart_pages,
                                 min(MAX_RESTART_PAGES, size // WAL_SHARE))
                self.wal_pages = int(pages)
                self.copies += 1
            except Exception:  # the writer's own checkpoint past SAFETY_PAGES is the net
                log.exception("a checkpoint of the WAL failed")
            with self._cond:
                self._done = asked
                self._cond.notify_all()

"""The durable spool: a small SQLite file holding events until the collector has them.

Each call writes its event before it returns (one autocommit INSERT in WAL mode with
`synchronous=NORMAL`: it survives a killed process; a power loss may lose the last
moments, the same trade as the collector's group commit without the fsync). A row is
deleted only after a 200 for its batch.

Rows carry the id of the client that owns them, so several processes (gunicorn workers)
can share one spool without sending a row twice. An owner proves it is alive by holding
an exclusive `flock` on `<spool>.owners/<owner>.lock`; the kernel drops that lock when the
process dies, however it dies. A client claims rows that nobody owns (spilled by a full
queue, released after an outage, or left by a dead owner) in one `BEGIN IMMEDIATE`
transaction, so a row is only ever in one process's queue. On systems without `fcntl`
an owner whose lock file has not been touched for ten minutes counts as dead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("kanal")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT,
    body BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS spool_owner ON spool (owner, id);
"""
_STALE_SECONDS = 600.0
_CHUNK = 500  # ids per statement, well under SQLite's variable limit

Row = tuple[int, bytes]


class Spool:
    """Events on disk until delivered; safe across threads and forks."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.owners_dir = self.path.with_name(self.path.name + ".owners")
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self.owner = ""
        self._become_owner()
        self._conn = self._connect()

    # --- lifecycle -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        return conn

    def _become_owner(self) -> None:
        self.owner = uuid.uuid4().hex
        self.owners_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path(self.owner), os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._lock_fd = fd

    def _lock_path(self, owner: str) -> Path:
        return self.owners_dir / f"{owner}.lock"

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                self._conn = self._connect()
            yield self._conn

    def close(self) -> None:
        """Give back the rows still here (the next client sends them) and let go of the file."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.execute(
                        "UPDATE spool SET owner = NULL WHERE owner = ?", (self.owner,)
                    )
                except sqlite3.Error as exc:
                    log.error("kanal: could not release spooled events: %s", exc)
                self._conn.close()
                self._conn = None
            if self._lock_fd is not None:
                with contextlib.suppress(OSError):
                    self._lock_path(self.owner).unlink()
                os.close(self._lock_fd)
                self._lock_fd = None

    # os.fork: a SQLite connection must not cross a fork, so the parent closes it around
    # the fork (holding the lock, so no thread is half-way through a statement) and both
    # sides reopen. The child becomes a new owner: the parent's rows stay the parent's.

    def before_fork(self) -> None:
        """Quiesce: called in the forking thread just before os.fork()."""
        self._lock.acquire()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def after_fork_in_parent(self) -> None:
        """Resume in the parent."""
        self._lock.release()

    def after_fork_in_child(self) -> None:
        """Start over as a new owner in the child."""
        self._lock = threading.Lock()
        if self._lock_fd is not None:
            # Our copy only; the parent's flock lives on through its own descriptor.
            os.close(self._lock_fd)
            self._lock_fd = None
        self._become_owner()

    # --- rows ------------------------------------------------------------------------

    def add(self, payload: bytes, *, owned: bool = True) -> int:
        """Store one encoded event; owned by this client, or by nobody if `owned` is False."""
        with self._db() as conn:
            cur = conn.execute(
                "INSERT INTO spool (owner, body, created) VALUES (?, ?, ?)",
                (self.owner if owned else None, payload, time.time()),
            )
            return cur.lastrowid or 0

    def delete(self, ids: Sequence[int]) -> None:
        """Forget delivered (or undeliverable) rows."""
        self._by_ids("DELETE FROM spool WHERE id IN ({})", (), ids)

    def release(self, ids: Sequence[int]) -> None:
        """Give rows back to nobody, for a later claim (after an outage)."""
        self._by_ids("UPDATE spool SET owner = NULL WHERE id IN ({})", (), ids)

    def _by_ids(self, sql: str, head: tuple[object, ...], ids: Sequence[int]) -> None:
        with self._db() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for i in range(0, len(ids), _CHUNK):
                    chunk = list(ids[i:i + _CHUNK])
                    conn.execute(sql.format(",".join("?" * len(chunk))), (*head, *chunk))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def claim(self, limit: int) -> list[Row]:
        """Take up to `limit` rows nobody owns (or whose owner died), oldest first."""
        if limit <= 0:
            return []
        dead: list[str] = []
        with self._db() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                owners = [o for (o,) in conn.execute(
                    "SELECT DISTINCT owner FROM spool WHERE owner IS NOT NULL AND owner != ?",
                    (self.owner,),
                )]
                dead = [o for o in owners if not self._alive(o)]
                for i in range(0, len(dead), _CHUNK):
                    chunk = dead[i:i + _CHUNK]
                    conn.execute(
                        "UPDATE spool SET owner = NULL WHERE owner IN ({})".format(
                            ",".join("?" * len(chunk))), chunk)
                rows: list[Row] = conn.execute(
                    "SELECT id, body FROM spool WHERE owner IS NULL ORDER BY id LIMIT ?",
                    (limit,),
                ).fetchall()
                ids = [r[0] for r in rows]
                for i in range(0, len(ids), _CHUNK):
                    some = ids[i:i + _CHUNK]
                    conn.execute(
                        "UPDATE spool SET owner = ? WHERE id IN ({})".format(
                            ",".join("?" * len(some))), (self.owner, *some))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        for owner in dead:
            with contextlib.suppress(OSError):
                self._lock_path(owner).unlink()
        return [(i, bytes(b)) for i, b in rows]

    def count(self) -> int:
        """Rows in the spool, whoever owns them."""
        with self._db() as conn:
            (n,) = conn.execute("SELECT count(*) FROM spool").fetchone()
            return int(n)

    def heartbeat(self) -> None:
        """Touch our lock file (liveness where flock is unavailable)."""
        with contextlib.suppress(OSError):
            os.utime(self._lock_path(self.owner))

    def _alive(self, owner: str) -> bool:
        path = self._lock_path(owner)
        if fcntl is None:
            try:
                return time.time() - path.stat().st_mtime < _STALE_SECONDS
            except OSError:
                return False
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True  # someone holds it: that owner is alive
        finally:
            os.close(fd)
        return False

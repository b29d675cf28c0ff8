"""Leases: the one that lets one process at a time run the singleton workers, and each
node's own, which says it is alive.

`WORKERS` is held by the `kanal serve` that runs the workers only one process may run
(the processor and its companions), or by `kanal profiles rebuild` while it replays the
log. A node lease (`node:<owner>`) is renewed by every `kanal serve` that runs workers,
whether it holds `WORKERS` or not: rows a node claimed (outbox sends) belong to a live
node while its lease is current, and to a dead one once it has expired or is gone.
Times are the clock's seconds.

Taking a lease is one statement (an upsert that only replaces an expired lease or the
caller's own), so lease transactions need no writer lock (`claim=True`): a node renews
its leases on time even while the processor holds the writer lock for a long batch.
"""

from __future__ import annotations

from .connection import Connection
from .db import transaction

WORKERS = "workers"
"""The singleton workers' lease."""
NODE = "node:"
"""Prefix of the node leases' names."""


def acquire(
    conn: Connection, name: str, owner: str, now: float, ttl: float
) -> bool:
    """Take or renew lease `name` for `owner` until now+ttl; False while another holds it."""
    with transaction(conn, claim=True):
        return _acquire(conn, name, owner, now, ttl)


def _acquire(conn: Connection, name: str, owner: str, now: float, ttl: float) -> bool:
    taken = conn.execute(
        "INSERT INTO leases (name, owner, expires_at) VALUES (?, ?, ?) "
        "ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, "
        "expires_at = excluded.expires_at "
        "WHERE leases.owner = excluded.owner OR leases.expires_at <= ? RETURNING owner",
        (name, owner, now + ttl, now),
    ).fetchone()
    return taken is not None


def tick(conn: Connection, owner: str, now: float, ttl: float, *,
         workers: bool = True) -> bool:
    """Renew node `owner`'s lease and, with `workers`, take or renew the singleton
    workers' lease too, in one transaction; True when `owner` holds the workers' lease."""
    with transaction(conn, claim=True):
        _acquire(conn, NODE + owner, owner, now, ttl)
        return workers and _acquire(conn, WORKERS, owner, now, ttl)


def release(conn: Connection, name: str, owner: str) -> None:
    """Give the lease up at once (a clean shutdown), if `owner` still holds it."""
    with transaction(conn, claim=True):
        conn.execute("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner))


def holder(conn: Connection, name: str) -> tuple[str, float] | None:
    """(owner, expires_at) of lease `name`, or None."""
    row = conn.execute("SELECT owner, expires_at FROM leases WHERE name = ?", (name,)).fetchone()
    return (str(row[0]), float(row[1])) if row else None


def live_nodes(conn: Connection, now: float) -> list[str]:
    """The owners of the node leases current at `now`."""
    return [str(r[0]) for r in conn.execute(
        "SELECT owner FROM leases WHERE name LIKE 'node:%' AND expires_at > ? "
        "ORDER BY owner", (now,))]

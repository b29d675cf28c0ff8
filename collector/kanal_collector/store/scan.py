"""Newest-first pages of a log-like table (events, failed events, the outbox) that stay
cheap however big the table is.

A page is keyset-paged on the id (`id < before`). Conditions an index serves go in the
index scan; other filters are applied to a window of at most `window` rows of that scan,
so one request never reads more than `window` rows. When the window holds fewer matches
than a page, the page ends early and its cursor points past the window: the next page
goes on from there (the dashboard says how far it looked).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .connection import Connection

Condition = tuple[str, Any]
"""A SQL condition with one `?` and its argument, e.g. ("state = ?", "failed")."""


@dataclass(frozen=True)
class Page:
    """Rows newest first; `before`: the cursor of the next (older) page, None at the end;
    `scanned`: True when the filters were applied to a bounded window that ended early."""

    rows: list[tuple[Any, ...]]
    before: int | None
    scanned: bool


def newest(conn: Connection, table: str, columns: str, *, indexed: Sequence[Condition] = (),
           filters: Sequence[Condition] = (), before: int | None = None, limit: int = 50,
           window: int = 5000) -> Page:
    """One page of `table` (its `id` first among `columns`), newest first."""
    where = ["id < ?"] + [c for c, _ in indexed]
    args: list[Any] = [before if before is not None else 2**62] + [a for _, a in indexed]
    scan = f"FROM {table} WHERE {' AND '.join(where)} ORDER BY id DESC"
    if not filters:
        rows = conn.execute(f"SELECT {columns} {scan} LIMIT ?", (*args, limit + 1)).fetchall()
        more = len(rows) > limit
        return Page(rows[:limit], int(rows[limit - 1][0]) if more else None, False)
    outer = " AND ".join(c for c, _ in filters)
    rows = conn.execute(
        f"SELECT {columns} FROM (SELECT {columns} {scan} LIMIT ?) w WHERE {outer} "
        "ORDER BY id DESC LIMIT ?", (*args, window, *[a for _, a in filters], limit + 1)
    ).fetchall()
    if len(rows) > limit:
        return Page(rows[:limit], int(rows[limit - 1][0]), False)
    last, seen = conn.execute(f"SELECT min(id), count(*) FROM (SELECT id {scan} LIMIT ?) w",
                              (*args, window)).fetchone()
    if int(seen) < window:
        return Page(rows, None, False)
    return Page(rows, int(last), True)

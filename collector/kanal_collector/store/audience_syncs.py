"""Ads audiences: each audience's schedule, progress and last outcome, and its rounds.

Written by the audience sync (audiences/sync.py), journey steps and `kanal forget`
(`mark_dirty`: sync soon), and requests for a sync (the admin API, the dashboard); read
by the audience worker, `kanal audiences`, the API and the dashboard.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .connection import Connection

_SYNC_FIELDS = frozenset({"destination", "identifiers", "mark", "run_id", "synced_at",
                          "next_at", "retry_at", "requested_at", "failures", "last_error",
                          "error_at"})
_RUN_FIELDS = frozenset({"finished_at", "added", "removed", "rejected", "batches",
                         "skipped_consent", "skipped_identifiers", "note", "error"})


def sync_state(conn: Connection, audience: str) -> dict[str, Any]:
    """The audience's schedule, progress and last outcome (defaults before the first)."""
    names = ("destination", "identifiers", "mark", "run_id", "synced_at", "next_at",
             "retry_at", "requested_at", "dirty_at", "failures", "last_error", "error_at")
    row = conn.execute(f"SELECT {', '.join(names)} FROM audience_syncs WHERE audience = ?",
                       (audience,)).fetchone()
    if row is None:
        return {**dict.fromkeys(names), "mark": 0, "failures": 0}
    return dict(zip(names, row, strict=True))


def update_sync(conn: Connection, audience: str, **fields: Any) -> None:
    """Set fields of the audience's sync row (created when missing)."""
    bad = set(fields) - _SYNC_FIELDS
    if bad:
        raise ValueError(f"unknown audience_syncs fields: {', '.join(sorted(bad))}")
    conn.execute("INSERT INTO audience_syncs (audience) VALUES (?) "
                 "ON CONFLICT (audience) DO NOTHING", (audience,))
    if fields:
        names = sorted(fields)
        conn.execute(f"UPDATE audience_syncs SET {', '.join(f'{n} = ?' for n in names)} "
                     "WHERE audience = ?", [*(fields[n] for n in names), audience])


def mark_dirty(conn: Connection, audiences: Iterable[str], now: int) -> None:
    """Journey steps or a forget changed who is in these audiences: sync them soon."""
    conn.executemany(
        "INSERT INTO audience_syncs (audience, dirty_at) VALUES (?, ?) "
        "ON CONFLICT (audience) DO UPDATE SET dirty_at = excluded.dirty_at",
        [(a, now) for a in audiences])


def clear_flags(conn: Connection, audience: str, *, dirty: int | None,
                requested: int | None) -> None:
    """A round that started when `dirty_at` and `requested_at` had these values is
    under way: clear each flag unless it was set again meanwhile."""
    if dirty is not None:
        conn.execute("UPDATE audience_syncs SET dirty_at = NULL WHERE audience = ? "
                     "AND dirty_at = ?", (audience, dirty))
    if requested is not None:
        conn.execute("UPDATE audience_syncs SET requested_at = NULL WHERE audience = ? "
                     "AND requested_at = ?", (audience, requested))


def start_run(conn: Connection, audience: str, reason: str, now: int) -> int:
    """A sync round begins; returns its id."""
    row = conn.execute("INSERT INTO audience_runs (audience, reason, started_at) "
                       "VALUES (?, ?, ?) RETURNING id", (audience, reason, now)).fetchone()
    return int(row[0])


def update_run(conn: Connection, run_id: int, *, add: Mapping[str, int] | None = None,
               **fields: Any) -> None:
    """Add to a round's counters (`add`) and set its other fields."""
    bad = (set(fields) | set(add or {})) - _RUN_FIELDS
    if bad:
        raise ValueError(f"unknown audience_runs fields: {', '.join(sorted(bad))}")
    add = add or {}
    sets = [f"{n} = {n} + ?" for n in sorted(add)] + [f"{n} = ?" for n in sorted(fields)]
    values = [add[n] for n in sorted(add)] + [fields[n] for n in sorted(fields)]
    if sets:
        conn.execute(f"UPDATE audience_runs SET {', '.join(sets)} WHERE id = ?",
                     [*values, run_id])


def prune_runs(conn: Connection, audience: str, keep: int) -> None:
    """Keep only the audience's latest `keep` rounds."""
    row = conn.execute("SELECT id FROM audience_runs WHERE audience = ? ORDER BY id DESC "
                       "LIMIT 1 OFFSET ?", (audience, keep)).fetchone()
    if row is not None:
        conn.execute("DELETE FROM audience_runs WHERE audience = ? AND id <= ?",
                     (audience, int(row[0])))


def run_row(conn: Connection, run_id: int) -> dict[str, Any] | None:
    """One round."""
    rows = _runs(conn, "WHERE id = ?", (run_id,))
    return rows[0] if rows else None


def recent_runs(conn: Connection, audience: str, limit: int = 10
                ) -> list[dict[str, Any]]:
    """The audience's latest rounds, newest first."""
    return _runs(conn, "WHERE audience = ? ORDER BY id DESC LIMIT ?", (audience, limit))


def _runs(conn: Connection, where: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    names = ("id", "audience", "reason", "started_at", "finished_at", "added", "removed",
             "rejected", "batches", "skipped_consent", "skipped_identifiers", "note", "error")
    return [dict(zip(names, r, strict=True)) for r in conn.execute(
        f"SELECT {', '.join(names)} FROM audience_runs {where}", params)]

"""Ads audiences: member rows per destination, skips, journey holds, schedule and runs.

Written by the audience sync (audiences/sync.py), journey steps (holds), `kanal forget`
and profile merges; read by `kanal audiences`, the admin API and the dashboard. Each
audience's schedule and rounds: audience_syncs.py.

Member states:
    adding     to be added (or being added: a batch in flight)
    added      the destination acknowledged the add
    removing   to be removed; the row and its hashes stay until the removal is
               acknowledged, then the row is deleted
    rejected   the destination refused the row (never retried unless it changes)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .audience_syncs import mark_dirty
from .chunks import chunks
from .connection import Connection

ADDING, ADDED, REMOVING, REJECTED = "adding", "added", "removing", "rejected"
STATES = (ADDING, ADDED, REMOVING, REJECTED)


@dataclass(frozen=True)
class Change:
    """What a sync round decides for one row: its new state (None: delete the row);
    `payload` for a new row (None: the row exists and keeps its payload)."""

    row_key: str
    profile_id: int | None
    payload: str | None
    state: str | None


# -- who should be in an audience ---------------------------------------------------------
#
# The diff runs in SQL: who is wanted (the segment's members and the people journey
# steps hold) against who the destination was told about, without reading either set
# into Python, so a round costs what changed, not the audience's size.

_SETTLED = "('adding', 'added', 'rejected')"


def _wanted(segment: str | None) -> tuple[str, list[Any]]:
    """SQL (and its parameters after the audience's) of the wanted profile ids."""
    held = ("SELECT h.profile_id FROM audience_holds h "
            "LEFT JOIN journey_runs r ON r.id = h.run_id "
            "WHERE h.audience = ? AND (h.keep = 1 OR r.state = 'active')")
    if segment is None:
        return held, []
    return f"SELECT profile_id FROM segment_members WHERE segment = ? UNION {held}", [segment]


def _ids(conn: Connection, sql: str, params: Sequence[Any]) -> set[int]:
    return {int(r[0]) for r in conn.execute(sql, params)}


def segment_member_ids(conn: Connection, segment: str) -> set[int]:
    """Every member of a segment."""
    return _ids(conn, "SELECT profile_id FROM segment_members WHERE segment = ?", (segment,))


def held_ids(conn: Connection, audience: str) -> set[int]:
    """People journey steps put in the audience: holds with `keep`, and holds of runs
    still going (a run that ended releases its holds, whatever path ended it)."""
    sql, params = _wanted(None)
    return _ids(conn, sql, [audience, *params])


def wanted_ids(conn: Connection, audience: str, segment: str | None) -> set[int]:
    """Everyone who should be in the audience (the first round looks at them all)."""
    sql, params = _wanted(segment)
    return _ids(conn, sql, [*params, audience])


def new_wanted(conn: Connection, audience: str, segment: str | None) -> set[int]:
    """Wanted people with no row the destination has (or is getting), and no skip."""
    sql, params = _wanted(segment)
    return _ids(conn,
                f"SELECT w.profile_id FROM ({sql}) w WHERE NOT EXISTS (SELECT 1 FROM "
                "audience_members m WHERE m.profile_id = w.profile_id AND m.audience = ? "
                f"AND m.state IN {_SETTLED}) AND NOT EXISTS (SELECT 1 FROM audience_skips s "
                "WHERE s.audience = ? AND s.profile_id = w.profile_id)",
                [*params, audience, audience, audience])


def touched_wanted(conn: Connection, audience: str, segment: str | None,
                   after: int, upto: int) -> set[int]:
    """Wanted people whose timeline got an event with an id in (after, upto]."""
    if upto <= after:
        return set()
    sql, params = _wanted(segment)
    return _ids(conn,
                "SELECT DISTINCT profile_id FROM profile_events WHERE event_id > ? AND "
                f"event_id <= ? AND profile_id IN ({sql})", [after, upto, *params, audience])


def unwanted(conn: Connection, audience: str, segment: str | None) -> set[int]:
    """People with rows (or skips) in the audience who are no longer wanted."""
    sql, params = _wanted(segment)
    rows = _ids(conn, "SELECT DISTINCT profile_id FROM audience_members WHERE audience = ? "
                f"AND state IN {_SETTLED} AND profile_id IS NOT NULL AND profile_id NOT IN "
                f"({sql})", [audience, *params, audience])
    return rows | _ids(conn, "SELECT profile_id FROM audience_skips WHERE audience = ? AND "
                       f"profile_id NOT IN ({sql})", [audience, *params, audience])


def rows_of_profiles(conn: Connection, audience: str, profile_ids: Iterable[int]
                     ) -> list[tuple[str, int | None, str]]:
    """(row_key, profile_id, state) of these people's rows in the audience."""
    out: list[tuple[str, int | None, str]] = []
    for chunk in chunks(sorted(set(profile_ids))):
        marks = ",".join("?" * len(chunk))
        out += [(str(k), int(p), str(s)) for k, p, s in conn.execute(
            f"SELECT row_key, profile_id, state FROM audience_members WHERE audience = ? "
            f"AND profile_id IN ({marks})", [audience, *chunk])]
    return out


def rows_by_key(conn: Connection, audience: str, row_keys: Iterable[str]
                ) -> dict[str, tuple[int | None, str]]:
    """{row_key: (profile_id, state)} of these rows, where they exist."""
    out: dict[str, tuple[int | None, str]] = {}
    for chunk in chunks(sorted(set(row_keys))):
        marks = ",".join("?" * len(chunk))
        for k, p, s in conn.execute(
                f"SELECT row_key, profile_id, state FROM audience_members WHERE audience = ? "
                f"AND row_key IN ({marks})", [audience, *chunk]):
            out[str(k)] = (None if p is None else int(p), str(s))
    return out


def skipped_among(conn: Connection, audience: str, profile_ids: Iterable[int]
                  ) -> set[int]:
    """Those of these people the audience has a skip for."""
    out: set[int] = set()
    for chunk in chunks(sorted(set(profile_ids))):
        marks = ",".join("?" * len(chunk))
        out |= _ids(conn, f"SELECT profile_id FROM audience_skips WHERE audience = ? AND "
                    f"profile_id IN ({marks})", [audience, *chunk])
    return out


def member_rows(conn: Connection, audience: str) -> list[tuple[str, int | None, str]]:
    """(row_key, profile_id, state) of every row of the audience."""
    return [(str(k), None if p is None else int(p), str(s)) for k, p, s in conn.execute(
        "SELECT row_key, profile_id, state FROM audience_members WHERE audience = ?",
        (audience,))]


def existing_profiles(conn: Connection, profile_ids: Iterable[int]) -> set[int]:
    """Those of `profile_ids` that still exist (not forgotten, not merged away)."""
    out: set[int] = set()
    for chunk in chunks(sorted(set(profile_ids))):
        marks = ",".join("?" * len(chunk))
        out.update(int(r[0]) for r in conn.execute(
            f"SELECT id FROM profiles WHERE id IN ({marks})", chunk))
    return out


# -- writing a round's decisions -------------------------------------------------------------

def apply_changes(conn: Connection, audience: str, changes: Sequence[Change],
                  now: int) -> None:
    """Write the decided rows: new rows (or existing ones given a payload) upserted,
    existing ones moved to their new state, deletes for None."""
    conn.executemany(
        "DELETE FROM audience_members WHERE audience = ? AND row_key = ?",
        [(audience, c.row_key) for c in changes if c.state is None])
    conn.executemany(
        "UPDATE audience_members SET profile_id = ?, state = ?, attempts = 0, error = NULL, "
        "retry_at = NULL, updated_at = ? WHERE audience = ? AND row_key = ?",
        [(c.profile_id, c.state, now, audience, c.row_key)
         for c in changes if c.state is not None and c.payload is None])
    conn.executemany(
        "INSERT INTO audience_members (audience, row_key, profile_id, payload, state, "
        "attempts, error, retry_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, NULL, NULL, ?) "
        "ON CONFLICT (audience, row_key) DO UPDATE SET profile_id = excluded.profile_id, "
        "state = excluded.state, attempts = 0, error = NULL, retry_at = NULL, "
        "updated_at = excluded.updated_at",
        [(audience, c.row_key, c.profile_id, c.payload, c.state, now)
         for c in changes if c.state is not None and c.payload is not None])


def set_skips(conn: Connection, audience: str, skips: Mapping[int, str | None]) -> None:
    """Record (reason) or clear (None) why people of the segment are not sent."""
    conn.executemany("DELETE FROM audience_skips WHERE audience = ? AND profile_id = ?",
                     [(audience, pid) for pid, why in skips.items() if why is None])
    conn.executemany(
        "INSERT INTO audience_skips (audience, profile_id, reason) VALUES (?, ?, ?) "
        "ON CONFLICT (audience, profile_id) DO UPDATE SET reason = excluded.reason",
        [(audience, pid, why) for pid, why in skips.items() if why is not None])


# -- sending ------------------------------------------------------------------------------

def pending(conn: Connection, audience: str, state: str, limit: int,
            now: int) -> list[tuple[str, str]]:
    """(row_key, payload) of up to `limit` rows waiting in `state` (adding or removing)
    and due, in a stable order (a batch cut short is sent again as it was)."""
    return [(str(k), str(p)) for k, p in conn.execute(
        "SELECT row_key, payload FROM audience_members WHERE audience = ? AND state = ? "
        "AND (retry_at IS NULL OR retry_at <= ?) ORDER BY row_key LIMIT ?",
        (audience, state, now, limit))]


def acknowledge(conn: Connection, audience: str, state: str,
                row_keys: Sequence[str], now: int) -> int:
    """The destination took these rows: an add becomes `added`, a removal deletes the
    row (and its hashes). Only rows still in `state` change (a person forgotten while
    their add was in flight stays `removing`). Returns how many changed."""
    if state == ADDING:
        cur = conn.executemany(
            "UPDATE audience_members SET state = 'added', attempts = 0, error = NULL, "
            "retry_at = NULL, updated_at = ? WHERE audience = ? AND row_key = ? "
            "AND state = 'adding'", [(now, audience, k) for k in row_keys])
    else:
        cur = conn.executemany(
            "DELETE FROM audience_members WHERE audience = ? AND row_key = ? "
            "AND state = 'removing'", [(audience, k) for k in row_keys])
    return int(cur.rowcount)


def reject(conn: Connection, audience: str, state: str,
           errors: Mapping[str, str], now: int, retry_at: int) -> None:
    """The destination refused these rows. A refused add is `rejected` (kept, not
    retried); a refused removal stays `removing` and is tried again at `retry_at`."""
    if state == ADDING:
        conn.executemany(
            "UPDATE audience_members SET state = 'rejected', error = ?, updated_at = ? "
            "WHERE audience = ? AND row_key = ? AND state = 'adding'",
            [(err[:500], now, audience, k) for k, err in errors.items()])
    else:
        conn.executemany(
            "UPDATE audience_members SET attempts = attempts + 1, error = ?, retry_at = ?, "
            "updated_at = ? WHERE audience = ? AND row_key = ? AND state = 'removing'",
            [(err[:500], retry_at, now, audience, k) for k, err in errors.items()])


def payloads_of(conn: Connection, audience: str,
                row_keys: Iterable[str]) -> dict[str, str]:
    """{row_key: payload} of these rows (a dry run shows the removals it would send)."""
    out: dict[str, str] = {}
    for chunk in chunks(sorted(set(row_keys))):
        marks = ",".join("?" * len(chunk))
        out.update((str(k), str(p)) for k, p in conn.execute(
            f"SELECT row_key, payload FROM audience_members WHERE audience = ? "
            f"AND row_key IN ({marks})", [audience, *chunk]))
    return out


def waiting(conn: Connection, audience: str) -> list[tuple[str, str, str]]:
    """(row_key, state, payload) of every row waiting to be added or removed."""
    return [(str(k), str(s), str(p)) for k, s, p in conn.execute(
        "SELECT row_key, state, payload FROM audience_members WHERE audience = ? "
        "AND state IN ('adding', 'removing') ORDER BY row_key", (audience,))]


def counts(conn: Connection, audience: str) -> dict[str, int]:
    """Rows per state, and skipped people per reason (`skipped:REASON`)."""
    out = {s: 0 for s in STATES}
    for state, n in conn.execute(
            "SELECT state, count(*) FROM audience_members WHERE audience = ? GROUP BY state",
            (audience,)):
        out[str(state)] = int(n)
    for reason, n in conn.execute(
            "SELECT reason, count(*) FROM audience_skips WHERE audience = ? GROUP BY reason",
            (audience,)):
        out[f"skipped:{reason}"] = int(n)
    out["held"] = len(held_ids(conn, audience))
    return out


def errors(conn: Connection, audience: str, limit: int = 10
           ) -> list[dict[str, Any]]:
    """The latest rows with an error (refused adds, removals being retried)."""
    return [{"rowKey": str(k), "state": str(s), "error": str(e), "attempts": int(a),
             "retryAt": r, "updatedAt": int(u)} for k, s, e, a, r, u in conn.execute(
        "SELECT row_key, state, error, attempts, retry_at, updated_at FROM audience_members "
        "WHERE audience = ? AND error IS NOT NULL ORDER BY updated_at DESC, row_key LIMIT ?",
        (audience, limit))]


def next_retry(conn: Connection, audience: str) -> int | None:
    """When the earliest removal waiting to be tried again is due."""
    row = conn.execute("SELECT min(retry_at) FROM audience_members WHERE audience = ? "
                       "AND state = 'removing' AND retry_at IS NOT NULL",
                       (audience,)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def audiences_with_rows(conn: Connection) -> list[str]:
    """Audiences that have any member rows (also ones no longer configured)."""
    return [str(r[0]) for r in conn.execute(
        "SELECT DISTINCT audience FROM audience_members ORDER BY audience")]


# -- privacy and merges ----------------------------------------------------------------------

def forget_profile(conn: Connection, profile_id: int, now: int) -> list[str]:
    """`kanal forget`: the person leaves every audience. Added (or being added) rows
    become removals with no profile (their hashes stay until each removal is
    acknowledged); refused rows, skips and journey holds are deleted. Returns the
    audiences that now have removals to send."""
    audiences = sorted({str(r[0]) for r in conn.execute(
        "SELECT DISTINCT audience FROM audience_members WHERE profile_id = ? "
        "AND state != 'rejected'", (profile_id,))})
    conn.execute("DELETE FROM audience_members WHERE profile_id = ? AND state = 'rejected'",
                 (profile_id,))
    conn.execute("UPDATE audience_members SET state = 'removing', profile_id = NULL, "
                 "attempts = 0, error = NULL, retry_at = NULL, updated_at = ? "
                 "WHERE profile_id = ?", (now, profile_id))
    conn.execute("DELETE FROM audience_skips WHERE profile_id = ?", (profile_id,))
    conn.execute("DELETE FROM audience_holds WHERE profile_id = ?", (profile_id,))
    mark_dirty(conn, audiences, now)
    return audiences


def profile_rows(conn: Connection, profile_id: int) -> list[dict[str, Any]]:
    """A person's rows in every audience (for `kanal profiles export`)."""
    return [{"audience": str(a), "state": str(s), "payload": str(p), "updatedAt": int(u)}
            for a, s, p, u in conn.execute(
                "SELECT audience, state, payload, updated_at FROM audience_members "
                "WHERE profile_id = ? ORDER BY audience, row_key", (profile_id,))]


def move_holds(conn: Connection, into: int, other: int) -> None:
    """Two profiles merged: `other`'s journey holds and skips belong to `into` now (its
    rows follow at the next sync, which finds the survivor's identifiers)."""
    conn.execute("UPDATE audience_holds SET profile_id = ? WHERE profile_id = ?", (into, other))
    conn.execute("DELETE FROM audience_skips WHERE profile_id = ?", (other,))


# -- journey holds ---------------------------------------------------------------------------

def add_hold(conn: Connection, audience: str, profile_id: int, run_id: int,
             keep: bool, now: int) -> None:
    """A journey step put the person in the audience."""
    conn.execute(
        "INSERT INTO audience_holds (audience, profile_id, run_id, keep, created_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (audience, profile_id, run_id) "
        "DO UPDATE SET keep = excluded.keep", (audience, profile_id, run_id, int(keep), now))
    mark_dirty(conn, [audience], now)


def remove_holds(conn: Connection, audience: str, profile_id: int, now: int) -> int:
    """A journey step took the person out of the audience (every journey's hold)."""
    cur = conn.execute("DELETE FROM audience_holds WHERE audience = ? AND profile_id = ?",
                       (audience, profile_id))
    mark_dirty(conn, [audience], now)
    return int(cur.rowcount)


def release_run(conn: Connection, run_id: int, now: int) -> list[str]:
    """A run ended: its holds without `keep` go. Returns the audiences concerned."""
    audiences = sorted({str(r[0]) for r in conn.execute(
        "SELECT DISTINCT audience FROM audience_holds WHERE run_id = ? AND keep = 0",
        (run_id,))})
    if audiences:
        conn.execute("DELETE FROM audience_holds WHERE run_id = ? AND keep = 0", (run_id,))
        mark_dirty(conn, audiences, now)
    return audiences


def profile_holds(conn: Connection, profile_id: int) -> list[dict[str, Any]]:
    """A person's journey holds (for `kanal profiles export`)."""
    return [{"audience": str(a), "runId": int(r), "keep": bool(k), "createdAt": int(c)}
            for a, r, k, c in conn.execute(
                "SELECT audience, run_id, keep, created_at FROM audience_holds "
                "WHERE profile_id = ? ORDER BY audience, run_id", (profile_id,))]

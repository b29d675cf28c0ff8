"""Journey versions, runs, timers, conversions, assignments and the run log.

Every function runs inside its caller's transaction (the processor's, the timer
worker's) and never commits. Times are epoch ms.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from .chunks import chunks
from .connection import Connection
from .events import _COLUMNS, StoredEvent, _stored, event_id_by_message

ACTIVE = "active"
RUN_STATES = ("active", "completed", "converted", "exited", "expired")
"""active: in a step or waiting; completed: ran out of steps; converted: left on the
goal; exited: an exit step, a holdout arm, a disabled journey or a merge that left the
person with two active runs of one journey; expired: a timer fired later than its step's
ttl."""


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# -- versions ---------------------------------------------------------------------------

def version_of_hash(conn: Connection, journey: str, hash_: str) -> int | None:
    """The version number stored for this text hash of a journey, if any."""
    row = conn.execute("SELECT version FROM journey_versions WHERE journey = ? AND hash = ?",
                       (journey, hash_)).fetchone()
    return None if row is None else int(row[0])


def add_version(conn: Connection, journey: str, hash_: str, text: str,
                path: str | None, now: int) -> int:
    """Store a new version of a journey's file; returns its number (1, 2, …)."""
    row = conn.execute("SELECT max(version) FROM journey_versions WHERE journey = ?",
                       (journey,)).fetchone()
    version = int(row[0] or 0) + 1
    conn.execute("INSERT INTO journey_versions (journey, version, hash, text, path, "
                 "created_at) VALUES (?,?,?,?,?,?)",
                 (journey, version, hash_, text, path, now))
    return version


def version_text(conn: Connection, journey: str, version: int) -> str | None:
    """The file text of one stored version."""
    row = conn.execute("SELECT text FROM journey_versions WHERE journey = ? AND version = ?",
                       (journey, version)).fetchone()
    return None if row is None else str(row[0])


def versions(conn: Connection, journey: str) -> list[dict[str, Any]]:
    """Every stored version of a journey, oldest first."""
    keys = ("version", "hash", "path", "created_at")
    return [dict(zip(keys, r, strict=True)) for r in conn.execute(
        "SELECT version, hash, path, created_at FROM journey_versions WHERE journey = ? "
        "ORDER BY version", (journey,))]


def all_versions(conn: Connection) -> list[tuple[str, int]]:
    """(journey, version) of every stored version."""
    return [(str(j), int(v)) for j, v in conn.execute(
        "SELECT journey, version FROM journey_versions ORDER BY journey, version")]


def set_current(conn: Connection, journey: str, version: int, enabled: bool,
                now: int) -> bool:
    """Point a journey at a version; True when that changed anything.

    The first time a journey is enabled is kept (`first_enabled_at`): new versions and
    later re-enabling don't move it.
    """
    row = conn.execute("SELECT version, enabled FROM journeys WHERE name = ?",
                       (journey,)).fetchone()
    if row is not None and (int(row[0]), bool(row[1])) == (version, enabled):
        return False
    first = now if enabled else None
    conn.execute("INSERT INTO journeys (name, version, enabled, updated_at, first_enabled_at) "
                 "VALUES (?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET "
                 "version = excluded.version, enabled = excluded.enabled, "
                 "updated_at = excluded.updated_at, "
                 "first_enabled_at = coalesce(journeys.first_enabled_at, "
                 "excluded.first_enabled_at)",
                 (journey, version, int(enabled), now, first))
    return True


def first_enabled(conn: Connection) -> dict[str, int | None]:
    """{journey: when it was first enabled (ms), None if never}."""
    return {str(n): None if t is None else int(t) for n, t in conn.execute(
        "SELECT name, first_enabled_at FROM journeys")}


def disable(conn: Connection, journey: str, now: int) -> bool:
    """Stop new runs of a journey (its file is gone); True when it was enabled."""
    cur = conn.execute("UPDATE journeys SET enabled = 0, updated_at = ? "
                       "WHERE name = ? AND enabled = 1", (now, journey))
    return cur.rowcount > 0


def current(conn: Connection) -> list[tuple[str, int, bool]]:
    """(journey, current version, enabled) of every known journey."""
    return [(str(n), int(v), bool(e)) for n, v, e in conn.execute(
        "SELECT name, version, enabled FROM journeys ORDER BY name")]


def stamp(conn: Connection) -> tuple[int, str]:
    """(how many journeys, their versions and flags): changes whenever any of them does."""
    rows = current(conn)
    return len(rows), ",".join(f"{n}:{v}:{int(e)}" for n, v, e in rows)


# -- runs -------------------------------------------------------------------------------

@dataclass
class Run:
    """One person in one journey, pinned to the version it started on."""

    id: int
    journey: str
    version: int
    profile_id: int
    state: str
    step: str | None
    wait_event: str | None
    context: dict[str, Any]
    entered_at: int
    ended_at: int | None = None
    converted: bool = False
    timer: Timer | None = None
    dedupe: str | None = None
    """The value of the journey's dedupe key this run is for (runs are per value)."""
    trusted: bool = True
    """Whether its trigger was trusted data (templates may aim links with it)."""


@dataclass
class Timer:
    """When a run's current step is due (a wait, a wait-for timeout, a webhook call)."""

    run_id: int
    due_at: int
    step: str
    kind: str
    attempts: int = 0


@dataclass
class NewRun:
    """A run about to start."""

    journey: str
    version: int
    profile_id: int
    dedupe: str | None
    trigger_event: int | None
    context: dict[str, Any] = field(default_factory=dict)
    trusted: bool = True


_RUN_COLS = ("r.id, r.journey, r.version, r.profile_id, r.state, r.step, r.wait_event, "
             "r.context, r.entered_at, r.ended_at, "
             "EXISTS (SELECT 1 FROM journey_conversions c WHERE c.run_id = r.id), "
             "t.due_at, t.step, t.kind, t.attempts, r.dedupe, r.trusted")
_RUN_FROM = "FROM journey_runs r LEFT JOIN journey_timers t ON t.run_id = r.id"


def _run(row: Sequence[Any]) -> Run:
    timer = None if row[11] is None else Timer(int(row[0]), int(row[11]), str(row[12]),
                                               str(row[13]), int(row[14]))
    return Run(int(row[0]), str(row[1]), int(row[2]), int(row[3]), str(row[4]), row[5],
               row[6], orjson.loads(row[7]), int(row[8]),
               None if row[9] is None else int(row[9]), bool(row[10]), timer, row[15],
               bool(row[16]))


def create_run(conn: Connection, new: NewRun, now: int) -> Run | None:
    """Start a run; None when its dedupe key was already used by this person."""
    row = conn.execute(
        "INSERT INTO journey_runs (journey, version, profile_id, state, dedupe, "
        "trigger_event, context, entered_at, updated_at, trusted) "
        "VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING RETURNING id",
        (new.journey, new.version, new.profile_id, ACTIVE, new.dedupe, new.trigger_event,
         _dumps(new.context), now, now, int(new.trusted))).fetchone()
    if row is None:
        return None
    return Run(int(row[0]), new.journey, new.version, new.profile_id, ACTIVE,
               None, None, new.context, now, dedupe=new.dedupe, trusted=new.trusted)


def get_run(conn: Connection, run_id: int) -> Run | None:
    """One run with its timer."""
    row = conn.execute(f"SELECT {_RUN_COLS} {_RUN_FROM} WHERE r.id = ?", (run_id,)).fetchone()
    return None if row is None else _run(row)


def runs_of_profiles(conn: Connection, profile_ids: Iterable[int],
                     ended_since: int) -> dict[int, list[Run]]:
    """Active runs of these people, and runs that ended after `ended_since` (ms).

    Ended runs are still read because a goal reached after the last step, but within
    the conversion window, is still a conversion.
    """
    out: dict[int, list[Run]] = {}
    for chunk in chunks(sorted(set(profile_ids)), 500):
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
                f"SELECT {_RUN_COLS} {_RUN_FROM} WHERE r.profile_id IN ({marks}) "
                "AND (r.state = 'active' OR r.ended_at >= ?) ORDER BY r.id",
                [*chunk, ended_since]):
            run = _run(row)
            out.setdefault(run.profile_id, []).append(run)
    return out


def entry_history(conn: Connection, journey: str,
                  profile_id: int) -> tuple[int, int | None, bool]:
    """(runs so far, when the last one started, whether one is active) for a person."""
    row = conn.execute(
        "SELECT count(*), max(entered_at), "
        "coalesce(max(CASE WHEN state = 'active' THEN 1 ELSE 0 END), 0) "
        "FROM journey_runs WHERE journey = ? AND profile_id = ?",
        (journey, profile_id)).fetchone()
    return int(row[0]), None if row[1] is None else int(row[1]), int(row[2]) > 0


def active_profiles(conn: Connection, journey: str) -> list[int]:
    """The people with an active run of a journey."""
    return [int(r[0]) for r in conn.execute(
        "SELECT DISTINCT profile_id FROM journey_runs WHERE journey = ? AND state = 'active' "
        "ORDER BY profile_id", (journey,))]


def active_runs_in(conn: Connection, profile_id: int,
                   journeys: Iterable[str]) -> list[tuple[str, int]]:
    """(journey, run id) of a person's active runs in any of these journeys."""
    names = sorted(set(journeys))
    if not names:
        return []
    marks = ",".join("?" * len(names))
    return [(str(j), int(r)) for j, r in conn.execute(
        f"SELECT journey, id FROM journey_runs WHERE profile_id = ? AND state = 'active' "
        f"AND journey IN ({marks}) ORDER BY id", (profile_id, *names))]


def dedupe_used(conn: Connection, journey: str, profile_id: int, dedupe: str) -> bool:
    """True when this person already had a run of the journey with this dedupe key."""
    return conn.execute(
        "SELECT 1 FROM journey_runs WHERE journey = ? AND profile_id = ? AND dedupe = ?",
        (journey, profile_id, dedupe)).fetchone() is not None


def update_run(conn: Connection, run: Run, now: int) -> None:
    """Write a run's step, wait and state back."""
    conn.execute("UPDATE journey_runs SET state = ?, step = ?, wait_event = ?, "
                 "updated_at = ? WHERE id = ?",
                 (run.state, run.step, run.wait_event, now, run.id))


def end_run(conn: Connection, run: Run, state: str, reason: str, now: int) -> None:
    """End a run (and drop its timer)."""
    conn.execute("UPDATE journey_runs SET state = ?, step = ?, wait_event = NULL, "
                 "updated_at = ?, ended_at = ?, end_reason = ? WHERE id = ?",
                 (state, run.step, now, now, reason, run.id))
    conn.execute("DELETE FROM journey_timers WHERE run_id = ?", (run.id,))


def move_runs(conn: Connection, into: int, other: int, at: int) -> list[int]:
    """Give `into` every run of `other` (a merge); returns the runs ended on the way.

    Timers, assignments and the log hang off the run id and move with it. Where both
    people have an active run of the same journey (for the same dedupe value, when the
    journey has a dedupe key: runs of different values go on side by side), the older
    run is kept and the newer one ends (state `exited`, its timer dropped, the reason in
    its log), so one person never has two active runs of a journey for one value. A
    dedupe key both people used stays with one run, so the unique (journey, person,
    dedupe) index holds.
    """
    active: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for run_id, journey, entered_at, dedupe in conn.execute(
            "SELECT id, journey, entered_at, dedupe FROM journey_runs "
            "WHERE profile_id IN (?, ?) AND state = 'active' ORDER BY entered_at, id",
            (into, other)):
        key = (str(journey), "" if dedupe is None else f"={dedupe}")
        active.setdefault(key, []).append((int(entered_at), int(run_id)))
    ended: list[int] = []
    for (journey, _), found in sorted(active.items()):
        kept = found[0][1]
        for _, run_id in found[1:]:
            reason = f"merged: profile {other} into {into}; run {kept} of {journey} kept"
            conn.execute("UPDATE journey_runs SET state = 'exited', wait_event = NULL, "
                         "updated_at = ?, ended_at = ?, end_reason = ? WHERE id = ?",
                         (at, at, reason, run_id))
            conn.execute("DELETE FROM journey_timers WHERE run_id = ?", (run_id,))
            conn.execute(
                "INSERT INTO journey_log (run_id, at, step, what, detail) "
                "SELECT id, ?, step, 'exited', ? FROM journey_runs WHERE id = ?",
                (at, _dumps({"reason": reason, "kept": kept}), run_id))
            ended.append(run_id)
    conn.execute(
        "UPDATE journey_runs SET dedupe = NULL WHERE profile_id = ? AND dedupe IS NOT NULL "
        "AND EXISTS (SELECT 1 FROM journey_runs k WHERE k.profile_id = ? "
        "AND k.journey = journey_runs.journey AND k.dedupe = journey_runs.dedupe)",
        (other, into))
    conn.execute("UPDATE journey_runs SET profile_id = ? WHERE profile_id = ?", (into, other))
    conn.execute("UPDATE journey_conversions SET profile_id = ? WHERE profile_id = ?",
                 (into, other))
    return ended


def runs(conn: Connection, *, journey: str | None = None,
         profile_id: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Runs, newest first, as plain rows (CLI and reports)."""
    where: list[str] = []
    args: list[Any] = []
    if journey is not None:
        where.append("journey = ?")
        args.append(journey)
    if profile_id is not None:
        where.append("profile_id = ?")
        args.append(profile_id)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    keys = ("id", "journey", "version", "profile_id", "state", "step", "wait_event",
            "dedupe", "entered_at", "ended_at", "end_reason")
    return [dict(zip(keys, r, strict=True)) for r in conn.execute(
        f"SELECT {', '.join(keys)} FROM journey_runs {clause} ORDER BY id DESC LIMIT ?",
        (*args, limit))]


def active_steps(conn: Connection, journey: str) -> dict[str, int]:
    """{step: active runs waiting at it} of one journey (its active runs only)."""
    return {str(s): int(n) for s, n in conn.execute(
        "SELECT step, count(*) FROM journey_runs WHERE journey = ? AND state = 'active' "
        "AND step IS NOT NULL GROUP BY step", (journey,))}


def run_counts(conn: Connection) -> dict[tuple[str, str], int]:
    """{(journey, state): runs}."""
    return {(str(j), str(s)): int(n) for j, s, n in conn.execute(
        "SELECT journey, state, count(*) FROM journey_runs GROUP BY journey, state")}


# -- timers -----------------------------------------------------------------------------

def set_timer(conn: Connection, run_id: int, due_at: int, step: str, kind: str,
              attempts: int = 0) -> None:
    """Give a run its (only) timer, replacing any earlier one."""
    conn.execute("INSERT INTO journey_timers (run_id, due_at, step, kind, attempts) "
                 "VALUES (?,?,?,?,?) ON CONFLICT(run_id) DO UPDATE SET due_at = excluded.due_at, "
                 "step = excluded.step, kind = excluded.kind, attempts = excluded.attempts",
                 (run_id, due_at, step, kind, attempts))


def delete_timer(conn: Connection, run_id: int) -> None:
    """Drop a run's timer."""
    conn.execute("DELETE FROM journey_timers WHERE run_id = ?", (run_id,))


def take_timer(conn: Connection, timer: Timer) -> bool:
    """Delete exactly this timer; False when it was already fired or replaced."""
    cur = conn.execute("DELETE FROM journey_timers WHERE run_id = ? AND step = ? AND kind = ? "
                       "AND due_at = ?", (timer.run_id, timer.step, timer.kind, timer.due_at))
    return cur.rowcount > 0


def due_timers(conn: Connection, until: int, limit: int, *,
               kinds: Sequence[str] | None = None, claim: bool = False) -> list[Timer]:
    """Timers due at or before `until`, oldest first.

    `claim` (inside a transaction) locks them, skipping timers another node's
    transaction holds (dialect.skip_locked).
    """
    sql = "SELECT run_id, due_at, step, kind, attempts FROM journey_timers WHERE due_at <= ?"
    args: list[Any] = [until]
    if kinds is not None:
        sql += f" AND kind IN ({','.join('?' * len(kinds))})"
        args += list(kinds)
    sql += " ORDER BY due_at LIMIT ?" + (conn.dialect.skip_locked if claim else "")
    return [Timer(int(r[0]), int(r[1]), str(r[2]), str(r[3]), int(r[4]))
            for r in conn.execute(sql, (*args, limit))]


def claim_calls(conn: Connection, now: int, limit: int, until: int) -> list[Timer]:
    """Take due webhook-call timers for a while: each is pushed to `until`, so no other
    node calls meanwhile, and is due again then if this one never reports back (its
    node died). Call in a claim transaction; returns them as they now are."""
    taken = []
    for timer in due_timers(conn, now, limit, kinds=("call",), claim=True):
        if extend_call(conn, timer, until):
            taken.append(Timer(timer.run_id, until, timer.step, timer.kind, timer.attempts))
    return taken


def extend_call(conn: Connection, timer: Timer, until: int) -> bool:
    """Push a claimed call timer to `until`; False when it has changed meanwhile."""
    return conn.execute(
        "UPDATE journey_timers SET due_at = ? WHERE run_id = ? AND step = ? AND kind = ? "
        "AND due_at = ?", (until, timer.run_id, timer.step, timer.kind, timer.due_at)
    ).rowcount > 0


def count_timers(conn: Connection) -> int:
    """How many timers are waiting."""
    return int(conn.execute("SELECT count(*) FROM journey_timers").fetchone()[0])


def first_unprocessed_at(conn: Connection, cursor: str) -> int | None:
    """received_at of the oldest event the processor (`cursor`) has not applied yet."""
    row = conn.execute(
        "SELECT received_at FROM events WHERE id > coalesce("
        "(SELECT position FROM cursors WHERE name = ?), 0) ORDER BY id LIMIT 1",
        (cursor,)).fetchone()
    return None if row is None else int(row[0])


# -- conversions, assignments, log ------------------------------------------------------

def add_conversion(conn: Connection, run: Run, event_id: int | None, event: str,
                   revenue: float | None, at: int) -> bool:
    """Record a run's conversion (once per run); True when it is new."""
    cur = conn.execute(
        "INSERT INTO journey_conversions (run_id, journey, version, profile_id, "
        "event_id, event, revenue, at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
        (run.id, run.journey, run.version, run.profile_id, event_id, event, revenue, at))
    return cur.rowcount > 0


def conversions(conn: Connection, journey: str | None = None) -> list[dict[str, Any]]:
    """Recorded conversions, oldest first."""
    keys = ("run_id", "journey", "version", "profile_id", "event_id", "event", "revenue", "at")
    clause, args = ("WHERE journey = ?", (journey,)) if journey else ("", ())
    return [dict(zip(keys, r, strict=True)) for r in conn.execute(
        f"SELECT {', '.join(keys)} FROM journey_conversions {clause} ORDER BY at, run_id",
        args)]


def assign(conn: Connection, run_id: int, step: str, arm: str, at: int) -> None:
    """Record which arm of a split a run was given."""
    conn.execute("INSERT INTO journey_assignments (run_id, step, arm, at) "
                 "VALUES (?,?,?,?) ON CONFLICT DO NOTHING", (run_id, step, arm, at))


def assignments(conn: Connection, journey: str) -> dict[tuple[str, str], int]:
    """{(step, arm): runs} of a journey's splits."""
    return {(str(s), str(a)): int(n) for s, a, n in conn.execute(
        "SELECT a.step, a.arm, count(*) FROM journey_assignments a "
        "JOIN journey_runs r ON r.id = a.run_id WHERE r.journey = ? GROUP BY a.step, a.arm",
        (journey,))}


def log(conn: Connection, run_id: int, at: int, step: str | None, what: str,
        detail: Any = None) -> None:
    """Note what happened to a run (the raw material of `kanal journeys why`)."""
    conn.execute("INSERT INTO journey_log (run_id, at, step, what, detail) VALUES (?,?,?,?,?)",
                 (run_id, at, step, what, None if detail is None else _dumps(detail)))


def run_log(conn: Connection, run_id: int) -> list[dict[str, Any]]:
    """What happened to a run, in order."""
    return [{"at": int(at), "step": step, "what": what,
             "detail": None if detail is None else orjson.loads(detail)}
            for at, step, what, detail in conn.execute(
                "SELECT at, step, what, detail FROM journey_log WHERE run_id = ? ORDER BY id",
                (run_id,))]


# -- refusals ---------------------------------------------------------------------------

HOUR_MS = 3_600_000


def count_refusals(conn: Connection, counts: dict[tuple[str, str, int], int]) -> None:
    """Add {(journey, code, epoch hour): trigger events refused} to the tally."""
    conn.executemany(
        "INSERT INTO journey_refusals (journey, code, hour, count) VALUES (?,?,?,?) "
        "ON CONFLICT (journey, code, hour) DO UPDATE SET "
        "count = journey_refusals.count + excluded.count",
        [(j, c, h, n) for (j, c, h), n in sorted(counts.items())])


def refusals_since(conn: Connection, since_ms: int,
                   journey: str | None = None) -> dict[tuple[str, str], int]:
    """{(journey, code): trigger events refused} from the hour of `since_ms` on."""
    sql = ("SELECT journey, code, coalesce(sum(count), 0) FROM journey_refusals "
           "WHERE hour >= ?")
    args: list[Any] = [since_ms // HOUR_MS]
    if journey is not None:
        sql += " AND journey = ?"
        args.append(journey)
    return {(str(j), str(c)): int(n) for j, c, n in conn.execute(
        sql + " GROUP BY journey, code", args)}


def prune_refusals(conn: Connection, before_ms: int) -> None:
    """Drop the tally of hours before `before_ms`."""
    conn.execute("DELETE FROM journey_refusals WHERE hour < ?", (before_ms // HOUR_MS,))


# -- schedules --------------------------------------------------------------------------

def set_schedule(conn: Connection, journey: str, next_at: int) -> None:
    """Make sure a scheduled journey has a next time (keeps an existing one)."""
    conn.execute("INSERT INTO journey_schedules (journey, next_at) VALUES (?, ?) "
                 "ON CONFLICT DO NOTHING", (journey, next_at))


def due_schedules(conn: Connection, now: int) -> list[tuple[str, int, int]]:
    """(journey, next_at, after_profile) of the schedules that are due."""
    return [(str(j), int(n), int(a)) for j, n, a in conn.execute(
        "SELECT journey, next_at, after_profile FROM journey_schedules WHERE next_at <= ? "
        "ORDER BY next_at", (now,))]


def claim_schedule(conn: Connection, journey: str,
                   now: int) -> tuple[int, int] | None:
    """(next_at, after_profile) of a due schedule, locked for this transaction; None
    when it is no longer due or another node's transaction holds it."""
    row = conn.execute("SELECT next_at, after_profile FROM journey_schedules "
                       "WHERE journey = ? AND next_at <= ?" + conn.dialect.skip_locked,
                       (journey, now)).fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


def schedule_progress(conn: Connection, journey: str, next_at: int,
                      after_profile: int) -> None:
    """Move a schedule on (a scan's progress, or its next time with after_profile 0)."""
    conn.execute("UPDATE journey_schedules SET next_at = ?, after_profile = ? "
                 "WHERE journey = ?", (next_at, after_profile, journey))


def drop_schedule(conn: Connection, journey: str) -> None:
    """Forget a journey's schedule (it is no longer scheduled or enabled)."""
    conn.execute("DELETE FROM journey_schedules WHERE journey = ?", (journey,))


def profiles_of_events(conn: Connection,
                       event_ids: Sequence[int]) -> dict[int, int]:
    """{event id: profile id} for the events on some profile's timeline."""
    out: dict[int, int] = {}
    for chunk in chunks(list(event_ids), 500):
        marks = ",".join("?" * len(chunk))
        for eid, pid in conn.execute(
                f"SELECT event_id, profile_id FROM profile_events WHERE event_id IN ({marks})",
                chunk):
            out[int(eid)] = int(pid)
    return out


def own_event(conn: Connection, source_id: int, message_id: str) -> StoredEvent | None:
    """One of Kanal's own events in the log, by its (source, messageId)."""
    event_id = event_id_by_message(conn, source_id, message_id)
    if event_id is None:
        return None
    row = conn.execute(f"SELECT {_COLUMNS} FROM events WHERE id = ?", (event_id,)).fetchone()
    return None if row is None else _stored(row)


def delete_profile_runs(conn: Connection, profile_id: int) -> int:
    """Delete a forgotten person's runs and everything hanging off them."""
    ids = [int(r[0]) for r in conn.execute(
        "SELECT id FROM journey_runs WHERE profile_id = ?", (profile_id,))]
    for table in ("journey_timers", "journey_assignments", "journey_log",
                  "journey_conversions"):
        for chunk in chunks(ids, 500):
            conn.execute(f"DELETE FROM {table} WHERE run_id IN ({','.join('?' * len(chunk))})",
                         chunk)
    conn.execute("DELETE FROM journey_runs WHERE profile_id = ?", (profile_id,))
    return len(ids)

"""Journey funnels and experiments kept per journey and UTC day of entry.

    funnel_runs    the runs of one journey that entered on one day, grouped by what they
                   left: version, current step ('' for none), still active, converted,
                   the steps their log names (sorted, one per line) → runs, revenue
    funnel_sends   per journey, day of entry and send step: outbox rows sent, and how
                   many of those were delivered, opened, clicked
    funnel_arms    per journey, day of entry, split step, arm and version: runs,
                   converted, revenue
    journey_marks  (journey, day, tx): a day whose runs changed since it was kept

A day's rows are written whole from the runs (store/reports.py `keep_day`) by the
processor's funnel step (reports/kept_funnels.py), mostly while it is idle. What
changes a day is caught where it is written, by triggers: a run started, moved on,
ended or deleted; a line naming a step logged; a conversion or its revenue; a split
assignment; an outbox row of a journey sent (or no longer sent); a stage of one reached.
Each adds a mark for the run's journey and day of entry, so a report reads the kept rows
of unmarked days and counts marked days (and the parts of days at the window's ends,
but a last day with no run entered after the window's end, read whole: a window ending
now) from the runs, as before: kept rows are never stale where they are read.

Marks carry the writing transaction (PostgreSQL's `txid_current()`, 0 on SQLite), and
keeping a day deletes only the marks it read before counting: a transaction that
commits while the day is counted leaves a mark of its own, so its change is counted
next time, never lost. (On SQLite the counting holds the one write lock.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .chunks import chunks
from .connection import Connection
from .dialect import SQLITE

DAY_MS = 86_400_000
TABLES = ("funnel_runs", "funnel_sends", "funnel_arms")

RunRow = tuple[int, str, bool, bool, str, int, float]
"""(version, current step or '', active, converted, logged steps, runs, revenue)."""
SendRow = tuple[str, int, int, int, int]
"""(step, sent, delivered, opened, clicked)."""
ArmRow = tuple[str, str, int, int, int, float]
"""(split step, arm, version, runs, converted, revenue)."""

_DAY = f"entered_at / {DAY_MS}"
# An outbox row of a journey send has the key journey:<journey>:<run id>:<step>
# (journeys/evaluator.outbox_key); names and step ids have no ':' (journeys/tree.py).
_RUN_TEXT = ("substr({o}.idempotency_key, length({o}.journey) + 10, "
             "length({o}.idempotency_key) - length({o}.journey) - length({o}.step) - 10)")


def steps_key(steps: Iterable[str]) -> str:
    """The logged steps of a group as stored: sorted, one per line."""
    return "\n".join(sorted(set(steps)))


def key_steps(key: str) -> list[str]:
    """The steps of a stored `steps_key`."""
    return key.split("\n") if key else []


# -- the tables and triggers (migration 22) ------------------------------------------------

def create(conn: Connection) -> None:
    """Make the tables and triggers, and mark every day that has runs (kept later)."""
    d = conn.dialect
    conn.execute(d.ddl(
        """CREATE TABLE journey_marks (
            journey {TEXT} NOT NULL, day {INT} NOT NULL, tx {INT} NOT NULL,
            PRIMARY KEY (journey, day, tx)
        ){WITHOUT_ROWID}"""))
    conn.execute(d.ddl(
        """CREATE TABLE funnel_runs (
            journey {TEXT} NOT NULL, day {INT} NOT NULL, version {INT} NOT NULL,
            step {TEXT} NOT NULL, active {INT} NOT NULL, won {INT} NOT NULL,
            steps {TEXT} NOT NULL, runs {INT} NOT NULL, revenue {REAL} NOT NULL,
            PRIMARY KEY (journey, day, version, step, active, won, steps)
        ){WITHOUT_ROWID}"""))
    conn.execute(d.ddl(
        """CREATE TABLE funnel_sends (
            journey {TEXT} NOT NULL, day {INT} NOT NULL, step {TEXT} NOT NULL,
            sent {INT} NOT NULL, delivered {INT} NOT NULL, opened {INT} NOT NULL,
            clicked {INT} NOT NULL, PRIMARY KEY (journey, day, step)
        ){WITHOUT_ROWID}"""))
    conn.execute(d.ddl(
        """CREATE TABLE funnel_arms (
            journey {TEXT} NOT NULL, day {INT} NOT NULL, step {TEXT} NOT NULL,
            arm {TEXT} NOT NULL, version {INT} NOT NULL, runs {INT} NOT NULL,
            won {INT} NOT NULL, revenue {REAL} NOT NULL,
            PRIMARY KEY (journey, day, step, arm, version)
        ){WITHOUT_ROWID}"""))
    for statement in (_SQLITE_TRIGGERS if d.name == SQLITE else _POSTGRES_TRIGGERS):
        conn.execute(statement)
    conn.execute(f"INSERT INTO journey_marks (journey, day, tx) "
                 f"SELECT DISTINCT journey, {_DAY}, 0 FROM journey_runs")



def drop(conn: Connection) -> None:
    """Take the triggers (and PostgreSQL's functions) away again: the tables stay."""
    made = _SQLITE_TRIGGERS if conn.dialect.name == SQLITE else _POSTGRES_TRIGGERS
    for statement in made:
        words = statement.split()
        if words[1] == "TRIGGER":
            table = words[words.index("ON") + 1]
            conn.execute(f"DROP TRIGGER IF EXISTS {words[2]}"
                         + ("" if conn.dialect.name == SQLITE else f" ON {table}"))
    for statement in made:
        words = statement.split()
        if words[1] == "FUNCTION":
            conn.execute(f"DROP FUNCTION IF EXISTS {words[2].split('(')[0]}")

def _sqlite_mark_run(run_id: str) -> str:
    return (f"INSERT INTO journey_marks (journey, day, tx) SELECT journey, {_DAY}, 0 "
            f"FROM journey_runs WHERE id = {run_id} ON CONFLICT DO NOTHING;")


def _sqlite_mark_sent(outbox: str, where: str) -> str:
    """Mark the run whose send is outbox row `o` (from `outbox`, chosen by `where`)."""
    run = _RUN_TEXT.format(o="o")
    run_id = (f"CASE WHEN {run} GLOB '[0-9]*' AND {run} NOT GLOB '*[^0-9]*' AND "
              f"o.idempotency_key = 'journey:' || o.journey || ':' || {run} || ':' || o.step "
              f"THEN CAST({run} AS INTEGER) END")
    return (f"INSERT INTO journey_marks (journey, day, tx) SELECT r.journey, r.{_DAY}, 0 "
            f"FROM {outbox} JOIN journey_runs r ON r.id = {run_id} "
            f"WHERE {where} AND o.journey IS NOT NULL AND o.step IS NOT NULL "
            "ON CONFLICT DO NOTHING;")


def _row(row: str) -> str:
    """A trigger's OLD or NEW outbox row as a one-row table `o`."""
    return (f"(SELECT {row}.idempotency_key AS idempotency_key, {row}.journey AS journey, "
            f"{row}.step AS step) o")


_RUN_CHANGED = ("OLD.state IS NOT NEW.state OR OLD.step IS NOT NEW.step OR "
                "OLD.version IS NOT NEW.version OR OLD.journey IS NOT NEW.journey OR "
                "OLD.entered_at IS NOT NEW.entered_at")
_SENT_CHANGED = "(OLD.state = 'sent') IS NOT (NEW.state = 'sent')"

_SQLITE_TRIGGERS: Sequence[str] = (
    "CREATE TRIGGER journey_runs_mark_insert AFTER INSERT ON journey_runs BEGIN "
    f"INSERT INTO journey_marks (journey, day, tx) VALUES (NEW.journey, NEW.{_DAY}, 0) "
    "ON CONFLICT DO NOTHING; END",
    "CREATE TRIGGER journey_runs_mark_update AFTER UPDATE ON journey_runs "
    f"WHEN {_RUN_CHANGED} BEGIN "
    f"INSERT INTO journey_marks (journey, day, tx) VALUES (OLD.journey, OLD.{_DAY}, 0) "
    "ON CONFLICT DO NOTHING; "
    f"INSERT INTO journey_marks (journey, day, tx) VALUES (NEW.journey, NEW.{_DAY}, 0) "
    "ON CONFLICT DO NOTHING; END",
    "CREATE TRIGGER journey_runs_mark_delete AFTER DELETE ON journey_runs BEGIN "
    f"INSERT INTO journey_marks (journey, day, tx) VALUES (OLD.journey, OLD.{_DAY}, 0) "
    "ON CONFLICT DO NOTHING; END",
    "CREATE TRIGGER journey_log_mark_insert AFTER INSERT ON journey_log "
    f"WHEN NEW.step IS NOT NULL BEGIN {_sqlite_mark_run('NEW.run_id')} END",
    "CREATE TRIGGER journey_log_mark_delete AFTER DELETE ON journey_log "
    f"WHEN OLD.step IS NOT NULL BEGIN {_sqlite_mark_run('OLD.run_id')} END",
    "CREATE TRIGGER journey_conversions_mark_insert AFTER INSERT ON journey_conversions "
    f"BEGIN {_sqlite_mark_run('NEW.run_id')} END",
    "CREATE TRIGGER journey_conversions_mark_update AFTER UPDATE ON journey_conversions "
    "WHEN OLD.revenue IS NOT NEW.revenue OR OLD.run_id IS NOT NEW.run_id "
    f"BEGIN {_sqlite_mark_run('OLD.run_id')} {_sqlite_mark_run('NEW.run_id')} END",
    "CREATE TRIGGER journey_conversions_mark_delete AFTER DELETE ON journey_conversions "
    f"BEGIN {_sqlite_mark_run('OLD.run_id')} END",
    "CREATE TRIGGER journey_assignments_mark_insert AFTER INSERT ON journey_assignments "
    f"BEGIN {_sqlite_mark_run('NEW.run_id')} END",
    "CREATE TRIGGER journey_assignments_mark_delete AFTER DELETE ON journey_assignments "
    f"BEGIN {_sqlite_mark_run('OLD.run_id')} END",
    "CREATE TRIGGER outbox_mark_update AFTER UPDATE ON outbox "
    f"WHEN NEW.journey IS NOT NULL AND {_SENT_CHANGED} "
    f"BEGIN {_sqlite_mark_sent(_row('NEW'), '1')} END",
    "CREATE TRIGGER outbox_mark_delete AFTER DELETE ON outbox "
    "WHEN OLD.journey IS NOT NULL AND OLD.state = 'sent' "
    f"BEGIN {_sqlite_mark_sent(_row('OLD'), '1')} END",
    "CREATE TRIGGER outbox_engagement_mark_insert AFTER INSERT ON outbox_engagement "
    f"BEGIN {_sqlite_mark_sent('outbox o', 'o.id = NEW.outbox_id')} END",
    "CREATE TRIGGER outbox_engagement_mark_delete AFTER DELETE ON outbox_engagement "
    f"BEGIN {_sqlite_mark_sent('outbox o', 'o.id = OLD.outbox_id')} END",
)

_PG_MARK = (f"INSERT INTO journey_marks (journey, day, tx) SELECT journey, {_DAY}, "
            "txid_current() FROM journey_runs WHERE id = {run} ON CONFLICT DO NOTHING;")
_PG_RUN_OF = """CREATE FUNCTION kanal_outbox_run(o outbox) RETURNS bigint
    LANGUAGE plpgsql IMMUTABLE AS $$
    DECLARE
        n integer;
        t text;
    BEGIN
        IF o.journey IS NULL OR o.step IS NULL THEN
            RETURN NULL;
        END IF;
        n := length(o.idempotency_key) - length(o.journey) - length(o.step) - 10;
        IF n < 1 OR n > 18 THEN
            RETURN NULL;
        END IF;
        t := substr(o.idempotency_key, length(o.journey) + 10, n);
        IF t !~ '^[0-9]+$'
                OR o.idempotency_key <> 'journey:' || o.journey || ':' || t || ':' || o.step THEN
            RETURN NULL;
        END IF;
        RETURN t::bigint;
    END $$"""

_POSTGRES_TRIGGERS: Sequence[str] = (
    _PG_RUN_OF,
    f"""CREATE FUNCTION kanal_mark_run() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            INSERT INTO journey_marks (journey, day, tx)
            VALUES (OLD.journey, OLD.{_DAY}, txid_current()) ON CONFLICT DO NOTHING;
        END IF;
        IF TG_OP <> 'DELETE' THEN
            INSERT INTO journey_marks (journey, day, tx)
            VALUES (NEW.journey, NEW.{_DAY}, txid_current()) ON CONFLICT DO NOTHING;
        END IF;
        RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION kanal_mark_run_of() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            {_PG_MARK.format(run='OLD.run_id')}
        END IF;
        IF TG_OP <> 'DELETE' THEN
            {_PG_MARK.format(run='NEW.run_id')}
        END IF;
        RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION kanal_mark_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            {_PG_MARK.format(run='kanal_outbox_run(OLD)')}
        ELSE
            {_PG_MARK.format(run='kanal_outbox_run(NEW)')}
        END IF;
        RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION kanal_mark_engagement() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        sent outbox;
    BEGIN
        SELECT * INTO sent FROM outbox
            WHERE id = CASE WHEN TG_OP = 'DELETE' THEN OLD.outbox_id ELSE NEW.outbox_id END;
        IF FOUND THEN
            {_PG_MARK.format(run='kanal_outbox_run(sent)')}
        END IF;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER journey_runs_mark AFTER INSERT OR DELETE ON journey_runs "
    "FOR EACH ROW EXECUTE FUNCTION kanal_mark_run()",
    "CREATE TRIGGER journey_runs_mark_update AFTER UPDATE ON journey_runs FOR EACH ROW "
    f"WHEN ({_RUN_CHANGED.replace(' IS NOT ', ' IS DISTINCT FROM ')}) "
    "EXECUTE FUNCTION kanal_mark_run()",
    "CREATE TRIGGER journey_log_mark AFTER INSERT ON journey_log FOR EACH ROW "
    "WHEN (NEW.step IS NOT NULL) EXECUTE FUNCTION kanal_mark_run_of()",
    "CREATE TRIGGER journey_log_mark_delete AFTER DELETE ON journey_log FOR EACH ROW "
    "WHEN (OLD.step IS NOT NULL) EXECUTE FUNCTION kanal_mark_run_of()",
    "CREATE TRIGGER journey_conversions_mark AFTER INSERT OR DELETE ON journey_conversions "
    "FOR EACH ROW EXECUTE FUNCTION kanal_mark_run_of()",
    "CREATE TRIGGER journey_conversions_mark_update AFTER UPDATE ON journey_conversions "
    "FOR EACH ROW WHEN (OLD.revenue IS DISTINCT FROM NEW.revenue "
    "OR OLD.run_id IS DISTINCT FROM NEW.run_id) EXECUTE FUNCTION kanal_mark_run_of()",
    "CREATE TRIGGER journey_assignments_mark AFTER INSERT OR DELETE ON journey_assignments "
    "FOR EACH ROW EXECUTE FUNCTION kanal_mark_run_of()",
    "CREATE TRIGGER outbox_mark_update AFTER UPDATE ON outbox FOR EACH ROW "
    "WHEN (NEW.journey IS NOT NULL AND "
    "(OLD.state = 'sent') IS DISTINCT FROM (NEW.state = 'sent')) "
    "EXECUTE FUNCTION kanal_mark_outbox()",
    "CREATE TRIGGER outbox_mark_delete AFTER DELETE ON outbox FOR EACH ROW "
    "WHEN (OLD.journey IS NOT NULL AND OLD.state = 'sent') "
    "EXECUTE FUNCTION kanal_mark_outbox()",
    "CREATE TRIGGER outbox_engagement_mark AFTER INSERT OR DELETE ON outbox_engagement "
    "FOR EACH ROW EXECUTE FUNCTION kanal_mark_engagement()",
)


# -- marks --------------------------------------------------------------------------------

def marked(conn: Connection, *, journey: str | None, first_day: int | None,
           last_day: int | None) -> set[tuple[str, int]]:
    """The (journey, day) pairs marked as changed, of one journey or all, days in
    [first_day, last_day] (None: open)."""
    where, args = _days(journey, first_day, last_day)
    return {(str(j), int(day)) for j, day in conn.execute(
        f"SELECT DISTINCT journey, day FROM journey_marks {where}", args)}


def mark_txs(conn: Connection, journey: str, day: int) -> list[int]:
    """The transactions that marked a journey's day (read before keeping it)."""
    return [int(tx) for (tx,) in conn.execute(
        "SELECT tx FROM journey_marks WHERE journey = ? AND day = ?", (journey, day))]


def unmark(conn: Connection, journey: str, day: int, txs: Sequence[int]) -> None:
    """Delete the marks read before the day was kept (not any written since)."""
    for chunk in chunks(list(txs), 500):
        conn.execute(f"DELETE FROM journey_marks WHERE journey = ? AND day = ? "
                     f"AND tx IN ({','.join('?' * len(chunk))})", [journey, day, *chunk])


# -- the kept rows ------------------------------------------------------------------------

def replace_day(conn: Connection, journey: str, day: int, runs: Sequence[RunRow],
                sends: Sequence[SendRow], arms: Sequence[ArmRow]) -> None:
    """Write one journey's day whole (what was kept of it before goes)."""
    for table in TABLES:
        conn.execute(f"DELETE FROM {table} WHERE journey = ? AND day = ?", (journey, day))
    if runs:
        conn.executemany(
            "INSERT INTO funnel_runs (journey, day, version, step, active, won, steps, runs, "
            "revenue) VALUES (?,?,?,?,?,?,?,?,?)",
            [(journey, day, v, s, int(a), int(w), k, n, r) for v, s, a, w, k, n, r in runs])
    if sends:
        conn.executemany(
            "INSERT INTO funnel_sends (journey, day, step, sent, delivered, opened, clicked) "
            "VALUES (?,?,?,?,?,?,?)", [(journey, day, *row) for row in sends])
    if arms:
        conn.executemany(
            "INSERT INTO funnel_arms (journey, day, step, arm, version, runs, won, revenue) "
            "VALUES (?,?,?,?,?,?,?,?)", [(journey, day, *row) for row in arms])


def _days(journey: str | None, first_day: int | None,
          last_day: int | None) -> tuple[str, list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if journey is not None:
        where.append("journey = ?")
        args.append(journey)
    if first_day is not None:
        where.append("day >= ?")
        args.append(first_day)
    if last_day is not None:
        where.append("day <= ?")
        args.append(last_day)
    return (f"WHERE {' AND '.join(where)}" if where else ""), args


def runs(conn: Connection, *, journey: str | None, first_day: int | None,
         last_day: int | None) -> list[tuple[str, int, RunRow]]:
    """(journey, day, group) of the kept runs of days in [first_day, last_day]."""
    where, args = _days(journey, first_day, last_day)
    return [(str(j), int(day), (int(v), str(s), bool(a), bool(w), str(k), int(n), float(r)))
            for j, day, v, s, a, w, k, n, r in conn.execute(
                "SELECT journey, day, version, step, active, won, steps, runs, revenue "
                f"FROM funnel_runs {where}", args)]


def sends(conn: Connection, *, journey: str | None, first_day: int | None,
          last_day: int | None) -> list[tuple[str, int, SendRow]]:
    """(journey, day, sends of a step) kept for days in [first_day, last_day]."""
    where, args = _days(journey, first_day, last_day)
    return [(str(j), int(day), (str(s), int(n), int(d), int(o), int(c)))
            for j, day, s, n, d, o, c in conn.execute(
                "SELECT journey, day, step, sent, delivered, opened, clicked "
                f"FROM funnel_sends {where}", args)]


def arms(conn: Connection, *, journey: str | None, first_day: int | None,
         last_day: int | None) -> list[tuple[str, int, ArmRow]]:
    """(journey, day, runs of an arm) kept for days in [first_day, last_day]."""
    where, args = _days(journey, first_day, last_day)
    return [(str(j), int(day), (str(s), str(a), int(v), int(n), int(w), float(r)))
            for j, day, s, a, v, n, w, r in conn.execute(
                "SELECT journey, day, step, arm, version, runs, won, revenue "
                f"FROM funnel_arms {where}", args)]


def run_totals(conn: Connection, *, journey: str | None, first_day: int | None,
               last_day: int | None) -> list[tuple[str, int, tuple[int, int, int, float]]]:
    """(journey, day, (runs, still active, converted, revenue)) kept for days in
    [first_day, last_day]."""
    where, args = _days(journey, first_day, last_day)
    return [(str(j), int(day), (int(n), int(a or 0), int(w or 0), float(r or 0.0)))
            for j, day, n, a, w, r in conn.execute(
                "SELECT journey, day, SUM(runs), SUM(CASE WHEN active = 1 THEN runs END), "
                "SUM(CASE WHEN won = 1 THEN runs END), SUM(revenue) "
                f"FROM funnel_runs {where} GROUP BY journey, day", args)]

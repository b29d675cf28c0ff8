"""Read-only queries of the journey funnels, experiments and KPI overview (reports/).

Nothing here writes but `keep_day` (the processor's funnel step keeping a day's counts,
store/funnel_days.py). Windows are [since_ms, until_ms) in epoch ms; None leaves a side
open. Runs are chosen by when they entered their journey (`entered_at`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import funnel_days
from .activity import decode_days
from .connection import Connection
from .dialect import SQLITE
from .stats import OWN_TYPE

DAY_MS = 86_400_000
_OWN = "kanal"
"""key_kind of Kanal's own events (profiles.step.KANAL_KEY_KIND)."""


def _runs_where(journey: str | None, since_ms: int | None,
                until_ms: int | None) -> tuple[str, list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if journey is not None:
        where.append("r.journey = ?")
        args.append(journey)
    if since_ms is not None:
        where.append("r.entered_at >= ?")
        args.append(since_ms)
    if until_ms is not None:
        where.append("r.entered_at < ?")
        args.append(until_ms)
    return (f"WHERE {' AND '.join(where)}" if where else ""), args


def outbox_events(conn: Connection, names: Sequence[str], *,
                  after_event: int = 0) -> Iterator[tuple[str, int, bool]]:
    """(event name, outbox id, flagged as a bot) of Kanal's own events about outbox rows.

    The events are found by name (there is no index on their properties); `after_event`
    skips the log before a known event id (a run's trigger), which a delivery, open or
    click of that run's sends can only follow.
    """
    if not names:
        return
    marks = ",".join("?" * len(names))
    for name, outbox_id, bot in conn.execute(
            f"SELECT event, {conn.dialect.json_value('body', 'properties', 'outbox_id')}, "
            f"{conn.dialect.json_value('body', 'properties', 'bot')} FROM events "
            f"WHERE id > ? AND key_kind = ? AND event IN ({marks})",
            (after_event, _OWN, *names)):
        if isinstance(outbox_id, int) and not isinstance(outbox_id, bool):
            yield str(name), outbox_id, bool(bot)


# -- funnels and experiments, summed by the database --------------------------------------

def _runs_table(conn: Connection, journey: str | None, since_ms: int | None,
                until_ms: int | None) -> str:
    """`journey_runs r` for a window's runs. With no journey to narrow them, SQLite is
    told to find them by `entered_at`: its planner would otherwise read every run through
    the (journey, entered_at) index, which holds all the columns these queries need
    (7 ms for no runs at all at 10M events)."""
    if journey is None and (since_ms is not None or until_ms is not None) and \
            conn.dialect.name == SQLITE:
        return "journey_runs r INDEXED BY journey_runs_entered_any"
    return "journey_runs r"


def _and(where: str) -> str:
    return "AND" if where else "WHERE"


def _live_journey_totals(conn: Connection, *, journey: str | None, since_ms: int | None,
                         until_ms: int | None) -> dict[str, tuple[int, int, int, float]]:
    """{journey: (runs entered, still active, converted, revenue)} of the runs that
    entered in the window."""
    where, args = _runs_where(journey, since_ms, until_ms)
    rows = conn.execute(
        "SELECT r.journey, COUNT(*), SUM(CASE WHEN r.state = 'active' THEN 1 ELSE 0 END), "
        f"COUNT(c.run_id), SUM(c.revenue) FROM {_runs_table(conn, journey, since_ms, until_ms)} "
        f"LEFT JOIN journey_conversions c ON c.run_id = r.id {where} GROUP BY r.journey",
        args)
    return {str(j): (int(n), int(a or 0), int(c), float(r or 0.0)) for j, n, a, c, r in rows}


def _live_window_versions(conn: Connection, *, journey: str, since_ms: int | None,
                    until_ms: int | None) -> set[int]:
    """The versions of a journey the runs that entered in the window are on."""
    where, args = _runs_where(journey, since_ms, until_ms)
    return {int(v) for (v,) in conn.execute(
        f"SELECT DISTINCT r.version FROM journey_runs r {where}", args)}


def _live_logged_step_names(conn: Connection, *, journey: str, since_ms: int | None,
                      until_ms: int | None) -> set[str]:
    """Every step the log names for the runs that entered in the window."""
    where, args = _runs_where(journey, since_ms, until_ms)
    return {str(s) for (s,) in conn.execute(
        f"SELECT DISTINCT l.step FROM journey_runs r JOIN journey_log l ON l.run_id = r.id "
        f"{where} {_and(where)} l.step IS NOT NULL", args)}


def _live_run_groups(conn: Connection, *, journey: str, since_ms: int | None,
               until_ms: int | None, steps: Sequence[str],
               ) -> list[tuple[int, str | None, bool, bool, frozenset[str], bool, int, float]]:
    """The runs that entered in the window, grouped by what they left: (version, current
    step, still active, converted, which of `steps` the log names, whether it names a
    step not in `steps`, runs, revenue)."""
    where, args = _runs_where(journey, since_ms, until_ms)
    flags: list[str] = []
    flag_args: list[Any] = []
    for step in steps:  # one flag a step: MAX, not a DISTINCT set (a sort per run)
        flags.append("MAX(CASE WHEN l.step = ? THEN 1 ELSE 0 END)")
        flag_args.append(step)
    marks = ",".join("?" * len(steps))
    flags.append(f"MAX(CASE WHEN l.step IS NOT NULL AND l.step NOT IN ({marks}) "
                 "THEN 1 ELSE 0 END)" if steps else
                 "MAX(CASE WHEN l.step IS NOT NULL THEN 1 ELSE 0 END)")
    flag_args += list(steps)
    width = len(flags)
    columns = ", ".join(f"{f} AS f{k}" for k, f in enumerate(flags))
    # One row per run (which steps its log names), then the runs grouped.
    sql = (
        f"SELECT version, step, active, won, {', '.join(f'f{k}' for k in range(width))}, "
        "COUNT(*), COALESCE(SUM(revenue), 0) FROM ("
        "SELECT r.id, r.version, r.step, "
        "MAX(CASE WHEN r.state = 'active' THEN 1 ELSE 0 END) AS active, "
        "MAX(CASE WHEN c.run_id IS NULL THEN 0 ELSE 1 END) AS won, "
        f"MAX(c.revenue) AS revenue, {columns} FROM journey_runs r "
        "LEFT JOIN journey_conversions c ON c.run_id = r.id "
        "LEFT JOIN journey_log l ON l.run_id = r.id "
        f"{where} GROUP BY r.id, r.version, r.step) runs "
        f"GROUP BY {', '.join(str(i) for i in range(1, 5 + width))}")
    out = []
    for row in conn.execute(sql, [*flag_args, *args]):
        named = frozenset(step for step, flag in zip(steps, row[4:3 + width], strict=True)
                          if flag)
        out.append((int(row[0]), row[1], bool(row[2]), bool(row[3]), named,
                    bool(row[3 + width]), int(row[4 + width]), float(row[5 + width])))
    return out


def _live_send_counts(conn: Connection, *, journey: str | None, since_ms: int | None,
                until_ms: int | None) -> list[tuple[str, str, int, int, int, int]]:
    """(journey, step, sent, delivered, opened, clicked): the outbox rows the send steps
    of the runs that entered in the window queued and that were sent, and how many of
    those reached each stage (store/engagement.py)."""
    where, args = _runs_where(journey, since_ms, until_ms)
    stage = "COUNT(DISTINCT CASE WHEN e.stage = '{}' THEN o.id END)"
    return [(str(j), str(st), int(n), int(d), int(op), int(cl))
            for j, st, n, d, op, cl in conn.execute(
        f"SELECT r.journey, l.step, COUNT(DISTINCT o.id), {stage.format('delivered')}, "
        f"{stage.format('opened')}, {stage.format('clicked')} "
        f"FROM {_runs_table(conn, journey, since_ms, until_ms)} "
        # The runs of the window first (by entered_at), then their log lines: with no
        # journey named, SQLite's planner would otherwise scan the whole journey log.
        f"{conn.dialect.ordered_join} journey_log l ON l.run_id = r.id "
        f"JOIN outbox o ON o.id = {conn.dialect.json_int('l.detail', 'outbox_id')} "
        "LEFT JOIN outbox_engagement e ON e.outbox_id = o.id "
        f"{where} {_and(where)} l.what = 'queued' AND o.state = 'sent' "
        "GROUP BY r.journey, l.step", args)]


def _live_arm_counts(conn: Connection, *, journey: str | None, since_ms: int | None,
               until_ms: int | None) -> list[tuple[str, str, str, int, int, int, float]]:
    """(journey, split step, arm, version, runs, converted, revenue) of the runs that
    entered in the window."""
    where, args = _runs_where(journey, since_ms, until_ms)
    return [(str(j), str(st), str(a), int(v), int(n), int(c), float(r or 0.0))
            for j, st, a, v, n, c, r in conn.execute(
        "SELECT r.journey, a.step, a.arm, r.version, COUNT(*), COUNT(c.run_id), "
        f"SUM(c.revenue) FROM {_runs_table(conn, journey, since_ms, until_ms)} "
        "JOIN journey_assignments a ON a.run_id = r.id "
        f"LEFT JOIN journey_conversions c ON c.run_id = r.id {where} "
        "GROUP BY r.journey, a.step, a.arm, r.version", args)]


# -- kept per day, counted from the runs where a day changed (store/funnel_days.py) -------

_MAX_LIVE_DAYS = 45
"""More changed days than this in a window, and the whole window is counted from the
runs (right after the upgrade, before the processor has kept the days)."""


@dataclass
class _Plan:
    """How a window is read: whole days [first_day, last_day] (None: open) from the kept
    rows but the `skip`ped (marked) ones, and the `live` pieces from the runs."""

    first_day: int | None = None
    last_day: int | None = None
    skip: set[tuple[str, int]] = field(default_factory=set)
    live: list[tuple[str | None, int | None, int | None]] = field(default_factory=list)
    kept: bool = False

    def days(self) -> dict[str, Any]:
        """The kept days' bounds as keyword arguments."""
        return {"first_day": self.first_day, "last_day": self.last_day}


def _plan(conn: Connection, journey: str | None, since_ms: int | None,
          until_ms: int | None, kept: bool) -> _Plan:
    whole = _Plan(live=[(journey, since_ms, until_ms)])
    if not kept:
        return whole
    first = None if since_ms is None else -(-since_ms // DAY_MS)
    end = None if until_ms is None else until_ms // DAY_MS
    last = None if end is None else end - 1
    if first is not None and last is not None and first > last:
        return whole  # less than a whole day
    if until_ms is not None and end is not None and end * DAY_MS < until_ms and \
            not _entered_between(conn, journey, until_ms, (end + 1) * DAY_MS):
        # No run entered in the rest of the window's last day (a window ending now): the
        # day's kept rows are its part in the window, so it is read as a whole day.
        end, last = end + 1, end
    plan = _Plan(first, last, kept=True)
    if since_ms is not None and first is not None and since_ms < first * DAY_MS:
        plan.live.append((journey, since_ms, first * DAY_MS))
    if until_ms is not None and end is not None and end * DAY_MS < until_ms:
        plan.live.append((journey, end * DAY_MS, until_ms))
    plan.skip = funnel_days.marked(conn, journey=journey, first_day=first, last_day=last)
    if len(plan.skip) > _MAX_LIVE_DAYS:
        return whole
    plan.live += [(j, day * DAY_MS, (day + 1) * DAY_MS) for j, day in sorted(plan.skip)]
    return plan


def _entered_between(conn: Connection, journey: str | None, since_ms: int,
                     until_ms: int) -> bool:
    """Whether a run (of `journey`, or of any) entered in [since_ms, until_ms)."""
    where, args = _runs_where(journey, since_ms, until_ms)
    table = _runs_table(conn, journey, since_ms, until_ms)
    return conn.execute(f"SELECT 1 FROM {table} {where} LIMIT 1",
                        args).fetchone() is not None


def journey_totals(conn: Connection, *, since_ms: int | None, until_ms: int | None,
                   kept: bool = True) -> dict[str, tuple[int, int, int, float]]:
    """{journey: (runs entered, still active, converted, revenue)} of the runs that
    entered in the window (`kept=False`: counted from the runs alone, the oracle)."""
    plan = _plan(conn, None, since_ms, until_ms, kept)
    out: dict[str, list[Any]] = {}
    for journey, since, until in plan.live:
        for name, row in _live_journey_totals(conn, journey=journey, since_ms=since,
                                              until_ms=until).items():
            _add(out.setdefault(name, [0, 0, 0, 0.0]), row)
    if plan.kept:
        for name, day, row in funnel_days.run_totals(conn, journey=None, **plan.days()):
            if (name, day) not in plan.skip:
                _add(out.setdefault(name, [0, 0, 0, 0.0]), row)
    return {name: (int(n), int(a), int(c), float(r)) for name, (n, a, c, r) in out.items()}


def _add(total: list[Any], row: Sequence[Any]) -> None:
    for i, value in enumerate(row):
        total[i] += value


def window_versions(conn: Connection, *, journey: str, since_ms: int | None,
                    until_ms: int | None, kept: bool = True) -> set[int]:
    """The versions of a journey the runs that entered in the window are on."""
    plan = _plan(conn, journey, since_ms, until_ms, kept)
    out: set[int] = set()
    for j, since, until in plan.live:
        out |= _live_window_versions(conn, journey=j or journey, since_ms=since,
                                     until_ms=until)
    if plan.kept:
        out |= {row[0] for _, day, row in funnel_days.runs(conn, journey=journey,
                                                             **plan.days())
                if (journey, day) not in plan.skip}
    return out


def logged_step_names(conn: Connection, *, journey: str, since_ms: int | None,
                      until_ms: int | None, kept: bool = True) -> set[str]:
    """Every step the log names for the runs that entered in the window."""
    plan = _plan(conn, journey, since_ms, until_ms, kept)
    out: set[str] = set()
    for j, since, until in plan.live:
        out |= _live_logged_step_names(conn, journey=j or journey, since_ms=since,
                                       until_ms=until)
    if plan.kept:
        for _, day, row in funnel_days.runs(conn, journey=journey, **plan.days()):
            if (journey, day) not in plan.skip:
                out.update(funnel_days.key_steps(row[4]))
    return out


Group = tuple[int, str | None, bool, bool, frozenset[str], bool]


def run_groups(conn: Connection, *, journey: str, since_ms: int | None,
               until_ms: int | None, steps: Sequence[str], kept: bool = True,
               ) -> list[tuple[int, str | None, bool, bool, frozenset[str], bool, int, float]]:
    """The runs that entered in the window, grouped by what they left: (version, current
    step, still active, converted, which of `steps` the log names, whether it names a
    step not in `steps`, runs, revenue)."""
    plan = _plan(conn, journey, since_ms, until_ms, kept)
    out: dict[Group, list[Any]] = {}
    for j, since, until in plan.live:
        for *key, n, revenue in _live_run_groups(conn, journey=j or journey, since_ms=since,
                                                 until_ms=until, steps=steps):
            _add(out.setdefault(tuple(key), [0, 0.0]), (n, revenue))  # type: ignore[arg-type]
    if plan.kept:
        wanted = set(steps)
        for _, day, (version, step, active, won, logged, n, revenue) in funnel_days.runs(
                conn, journey=journey, **plan.days()):
            if (journey, day) in plan.skip:
                continue
            names = set(funnel_days.key_steps(logged))
            group: Group = (version, step or None, active, won, frozenset(names & wanted),
                            bool(names - wanted))
            _add(out.setdefault(group, [0, 0.0]), (n, revenue))
    return [(*key, int(n), float(r)) for key, (n, r) in out.items()]


def send_counts(conn: Connection, *, journey: str | None, since_ms: int | None,
                until_ms: int | None, kept: bool = True,
                ) -> list[tuple[str, str, int, int, int, int]]:
    """(journey, step, sent, delivered, opened, clicked): the outbox rows the send steps
    of the runs that entered in the window queued and that were sent, and how many of
    those reached each stage (store/engagement.py)."""
    plan = _plan(conn, journey, since_ms, until_ms, kept)
    out: dict[tuple[str, str], list[int]] = {}
    for j, since, until in plan.live:
        for name, step, *counts in _live_send_counts(conn, journey=j, since_ms=since,
                                                     until_ms=until):
            _add(out.setdefault((name, step), [0, 0, 0, 0]), counts)
    if plan.kept:
        for name, day, (step, *counts) in funnel_days.sends(conn, journey=journey,
                                                             **plan.days()):
            if (name, day) not in plan.skip:
                _add(out.setdefault((name, step), [0, 0, 0, 0]), counts)
    return [(name, step, *counts) for (name, step), counts in out.items()]  # type: ignore[misc]


def arm_counts(conn: Connection, *, journey: str | None, since_ms: int | None,
               until_ms: int | None, kept: bool = True,
               ) -> list[tuple[str, str, str, int, int, int, float]]:
    """(journey, split step, arm, version, runs, converted, revenue) of the runs that
    entered in the window."""
    plan = _plan(conn, journey, since_ms, until_ms, kept)
    out: dict[tuple[str, str, str, int], list[Any]] = {}
    for j, since, until in plan.live:
        for name, step, arm, version, *counts in _live_arm_counts(
                conn, journey=j, since_ms=since, until_ms=until):
            _add(out.setdefault((name, step, arm, version), [0, 0, 0.0]), counts)
    if plan.kept:
        for name, day, (step, arm, version, *counts) in funnel_days.arms(
                conn, journey=journey, **plan.days()):
            if (name, day) not in plan.skip:
                _add(out.setdefault((name, step, arm, version), [0, 0, 0.0]), counts)
    return [(*key, int(n), int(c), float(r)) for key, (n, c, r) in out.items()]


def keep_day(conn: Connection, journey: str, day: int) -> None:
    """Count one journey's runs that entered on one UTC day from the runs, and keep the
    counts (store/funnel_days.py); the caller unmarks the day."""
    since, until = day * DAY_MS, (day + 1) * DAY_MS
    where, args = _runs_where(journey, since, until)
    logged: dict[int, set[str]] = {}
    for run_id, step in conn.execute(
            f"SELECT DISTINCT l.run_id, l.step FROM journey_runs r "
            f"JOIN journey_log l ON l.run_id = r.id {where} AND l.step IS NOT NULL", args):
        logged.setdefault(int(run_id), set()).add(str(step))
    groups: dict[tuple[int, str, bool, bool, str], list[Any]] = {}
    for run_id, version, step, state, won, revenue in conn.execute(
            "SELECT r.id, r.version, r.step, r.state, "
            "CASE WHEN c.run_id IS NULL THEN 0 ELSE 1 END, c.revenue FROM journey_runs r "
            f"LEFT JOIN journey_conversions c ON c.run_id = r.id {where}", args):
        key = (int(version), str(step or ""), state == "active", bool(won),
               funnel_days.steps_key(logged.get(int(run_id), ())))
        _add(groups.setdefault(key, [0, 0.0]), (1, float(revenue or 0.0)))
    runs = [(*key, int(n), float(r)) for key, (n, r) in groups.items()]
    sends = [row[1:] for row in _live_send_counts(conn, journey=journey, since_ms=since,
                                                  until_ms=until)]
    arms = [row[1:] for row in _live_arm_counts(conn, journey=journey, since_ms=since,
                                                until_ms=until)]
    funnel_days.replace_day(conn, journey, day, runs, sends, arms)


# -- overview ---------------------------------------------------------------------------

def event_counts(conn: Connection, first_day: str,
                 last_day: str) -> list[tuple[str, str, bool, int]]:
    """(day, origin, Kanal's own?, events) from the processor's daily counters, days
    inclusive."""
    return [(str(day), str(origin), bool(own), int(n)) for day, origin, own, n in conn.execute(
        "SELECT day, origin, CASE WHEN type = ? THEN 1 ELSE 0 END AS own, sum(count) "
        "FROM event_stats WHERE day >= ? AND day <= ? "
        "GROUP BY day, origin, own ORDER BY day, origin, own", (OWN_TYPE, first_day, last_day))]


# People and goals come from the daily aggregates the processor's profiles step keeps
# (active_spans, track_daily: store/schema.py _m009; store/profiles.py explains them), a
# few rows per day, so the overview costs the same whatever the size of the log and the
# number of people. Days are UTC day numbers, both inclusive.

def active_profiles_by_day(conn: Connection, first_day: int,
                           last_day: int) -> dict[int, int]:
    """{day number (ms // 86 400 000): profiles with an event of their own that day}."""
    return {int(day): int(n) for day, n in conn.execute(
        "SELECT day, sum(people) FROM active_spans WHERE day >= ? AND day <= ? "
        "GROUP BY day", (first_day, last_day))}


def active_profiles(conn: Connection, first_day: int, last_day: int) -> int:
    """Distinct profiles with an event of their own (not Kanal's) on any of the days:
    each counted on their first active day of the window."""
    row = conn.execute("SELECT sum(people) FROM active_spans "
                       "WHERE day >= ? AND day <= ? AND prev_day < ?",
                       (first_day, last_day, first_day)).fetchone()
    return int(row[0] or 0)


def goal_totals(conn: Connection, names: Sequence[str], first_day: int,
                last_day: int) -> list[tuple[int, int, float]]:
    """(day, events, order value) of people's track events named `names`, per day."""
    if not names:
        return []
    marks = ",".join("?" * len(names))
    return [(int(day), int(n), float(revenue)) for day, n, revenue in conn.execute(
        "SELECT day, sum(count), coalesce(sum(revenue), 0.0) FROM track_daily "
        f"WHERE day >= ? AND day <= ? AND event IN ({marks}) GROUP BY day ORDER BY day",
        (first_day, last_day, *names))]


# -- the same figures from the timelines (tests and benchmarks check the aggregates) ---

_PEOPLE_EVENTS = (
    "FROM profile_events pe JOIN events e ON e.id = pe.event_id WHERE e.key_kind != ?"
)


def recount_active_days(conn: Connection) -> set[tuple[int, int]]:
    """Every (day, profile_id) of people's active days, recounted from the timelines."""
    return {(int(ts) // DAY_MS, int(pid)) for ts, pid in conn.execute(
        f"SELECT pe.timestamp, pe.profile_id {_PEOPLE_EVENTS}", (_OWN,))}


def recount_track_events(conn: Connection) -> list[tuple[int, str, Any]]:
    """(timestamp, name, properties) of every track event on a timeline that is a
    person's own: what track_daily sums, recounted from the log. The properties are
    JSON text on SQLite and a dict on PostgreSQL (order_value takes either)."""
    return [(int(ts), str(name), props) for ts, name, props in conn.execute(
        f"SELECT e.timestamp, e.event, {conn.dialect.json_value('e.body', 'properties')} "
        "FROM events e "
        "WHERE e.type = 'track' AND e.key_kind != ? AND e.event IS NOT NULL "
        "AND e.id IN (SELECT event_id FROM profile_events) ORDER BY e.id", (_OWN,))]


def active_spans(conn: Connection) -> dict[tuple[int, int], int]:
    """The stored active_spans: {(day, previous active day): people}."""
    return {(int(d), int(p)): int(n) for d, p, n in conn.execute(
        "SELECT day, prev_day, people FROM active_spans")}


def daily_aggregates(conn: Connection) -> tuple[set[tuple[int, int]],
                                                        dict[tuple[int, str],
                                                             tuple[int, float]]]:
    """The stored aggregates: (active_days pairs, {(day, event): (count, revenue)})."""
    active = {(day, int(pid)) for pid, text in conn.execute(
        "SELECT id, active_days FROM profiles WHERE active_days IS NOT NULL")
        for day in decode_days(text)}
    return active, track_daily(conn)


def track_daily(conn: Connection) -> dict[tuple[int, str], tuple[int, float]]:
    """The stored track_daily: {(day, event): (count, revenue)}."""
    return {(int(d), str(e)): (int(n), float(r)) for d, e, n, r in conn.execute(
        "SELECT day, event, count, revenue FROM track_daily")}

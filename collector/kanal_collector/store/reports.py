"""Read-only queries of the journey funnels, experiments and KPI overview (reports/).

Nothing here writes. Windows are [since_ms, until_ms) in epoch ms; None leaves a side
open. Runs are chosen by when they entered their journey (`entered_at`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .connection import Connection
from .stats import OWN_TYPE

DAY_MS = 86_400_000
_OWN = "kanal"
"""key_kind of Kanal's own events (profiles.step.KANAL_KEY_KIND)."""


@dataclass(frozen=True)
class RunRow:
    """One run of a journey, with its conversion."""

    id: int
    journey: str
    version: int
    state: str
    step: str | None
    trigger_event: int | None
    converted: bool
    revenue: float


@dataclass(frozen=True)
class SendRow:
    """One outbox row a run's send step queued."""

    run_id: int
    step: str
    outbox_id: int
    state: str
    channel: str | None


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


def window_runs(conn: Connection, *, journey: str | None, since_ms: int | None,
                until_ms: int | None) -> list[RunRow]:
    """The runs that entered in the window (of one journey, or of all), oldest first."""
    where, args = _runs_where(journey, since_ms, until_ms)
    return [RunRow(int(r[0]), str(r[1]), int(r[2]), str(r[3]), r[4],
                   None if r[5] is None else int(r[5]), bool(r[6]), float(r[7] or 0.0))
            for r in conn.execute(
                "SELECT r.id, r.journey, r.version, r.state, r.step, r.trigger_event, "
                "c.run_id IS NOT NULL, c.revenue FROM journey_runs r "
                f"LEFT JOIN journey_conversions c ON c.run_id = r.id {where} ORDER BY r.id",
                args)]


def logged_steps(conn: Connection, *, journey: str | None, since_ms: int | None,
                 until_ms: int | None) -> list[tuple[int, str]]:
    """(run id, step) for every step the log mentions, of the runs in the window."""
    where, args = _runs_where(journey, since_ms, until_ms)
    return [(int(run_id), str(step)) for run_id, step in conn.execute(
        "SELECT DISTINCT l.run_id, l.step FROM journey_runs r "
        f"JOIN journey_log l ON l.run_id = r.id {where} "
        f"{'AND' if where else 'WHERE'} l.step IS NOT NULL", args)]


def window_sends(conn: Connection, *, journey: str | None, since_ms: int | None,
                 until_ms: int | None) -> list[SendRow]:
    """The outbox rows queued by the send steps of the runs in the window.

    The journey log's `queued` line names the row (`detail.outbox_id`), written in the
    transaction that inserted it.
    """
    where, args = _runs_where(journey, since_ms, until_ms)
    return [SendRow(int(r[0]), str(r[1]), int(r[2]), str(r[3]), r[4]) for r in conn.execute(
        "SELECT l.run_id, l.step, o.id, o.state, o.channel FROM journey_runs r "
        "JOIN journey_log l ON l.run_id = r.id "
        f"JOIN outbox o ON o.id = {conn.dialect.json_int('l.detail', 'outbox_id')} "
        f"{where} {'AND' if where else 'WHERE'} l.what = 'queued' ORDER BY o.id", args)]


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


def window_assignments(conn: Connection, *, journey: str | None,
                       since_ms: int | None, until_ms: int | None) -> list[tuple[int, str, str]]:
    """(run id, split step, arm) of the runs in the window."""
    where, args = _runs_where(journey, since_ms, until_ms)
    return [(int(run_id), str(step), str(arm)) for run_id, step, arm in conn.execute(
        "SELECT a.run_id, a.step, a.arm FROM journey_runs r "
        f"JOIN journey_assignments a ON a.run_id = r.id {where} ORDER BY a.run_id", args)]


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
    """Every (day, profile_id) of active_days, recounted from the timelines."""
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
    active = {(int(d), int(p)) for d, p in conn.execute(
        "SELECT day, profile_id FROM active_days")}
    tracks = {(int(d), str(e)): (int(n), float(r)) for d, e, n, r in conn.execute(
        "SELECT day, event, count, revenue FROM track_daily")}
    return active, tracks

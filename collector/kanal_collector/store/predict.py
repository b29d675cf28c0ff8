"""Predictive scores: the fits (predict_fits) and each customer's scores (predict_scores).

Written by a fit (predict/fit.py) and by `kanal profiles rebuild`; read by the profile
views, segments, journeys and templates (as computed values), the admin API and the
dashboard.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import score_counts as score_counts_store
from .chunks import chunks
from .connection import Connection
from .profiles import _dumps, _loads

# Column of predict_scores → its name among a profile's computed values.
SCORE_COLUMNS = {
    "stage": "stage", "churn_risk": "churnRisk", "p_active": "probabilityActive",
    "expected_90": "expectedOrders90d", "expected_365": "expectedOrders365d",
    "predicted_value": "predictedValue", "historic_value": "historicValue",
    "next_order_at": "nextOrderAt", "recency_score": "recencyScore",
    "frequency_score": "frequencyScore", "monetary_score": "monetaryScore",
}
_SELECT = ", ".join(SCORE_COLUMNS)
FINISHED = ("done", "not_enough_data")
"""States of a fit whose scores are in use."""


# -- fits -------------------------------------------------------------------------------

def create_fit(conn: Connection, *, model_version: str, started_at: int,
               as_of: int) -> int:
    """A new fit in state `running`; returns its id."""
    row = conn.execute(
        "INSERT INTO predict_fits (model_version, started_at, as_of, status, record) "
        "VALUES (?, ?, ?, 'running', '{}') RETURNING id",
        (model_version, started_at, as_of)).fetchone()
    return int(row[0])


def finish_fit(conn: Connection, fit_id: int, *, status: str, message: str | None,
               record: Mapping[str, Any], finished_at: int) -> None:
    """Record how a fit ended (`done`, `not_enough_data`, `failed`, `interrupted`)."""
    conn.execute(
        "UPDATE predict_fits SET status = ?, message = ?, record = ?, finished_at = ? "
        "WHERE id = ?", (status, message, _dumps(dict(record)), finished_at, fit_id))


def _fit_row(row: Sequence[Any]) -> dict[str, Any]:
    keys = ("id", "modelVersion", "startedAt", "finishedAt", "asOf", "status", "message")
    out = dict(zip(keys, row[:7], strict=True))
    out["record"] = _loads(row[7]) if row[7] else {}
    return out


_FIT_COLUMNS = "id, model_version, started_at, finished_at, as_of, status, message, record"


def fit(conn: Connection, fit_id: int) -> dict[str, Any] | None:
    """One fit, or None."""
    row = conn.execute(f"SELECT {_FIT_COLUMNS} FROM predict_fits WHERE id = ?",
                       (fit_id,)).fetchone()
    return None if row is None else _fit_row(row)


def latest_fit(conn: Connection, *,
               statuses: Sequence[str] = FINISHED) -> dict[str, Any] | None:
    """The newest fit in one of `statuses` (by default: whose scores are in use)."""
    marks = ",".join("?" * len(statuses))
    row = conn.execute(
        f"SELECT {_FIT_COLUMNS} FROM predict_fits WHERE status IN ({marks}) "
        "ORDER BY id DESC LIMIT 1", tuple(statuses)).fetchone()
    return None if row is None else _fit_row(row)


def last_started(conn: Connection) -> int | None:
    """When the newest fit of any outcome started (ms), or None before the first."""
    row = conn.execute("SELECT max(started_at) FROM predict_fits").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def fits(conn: Connection, *, limit: int = 100) -> list[dict[str, Any]]:
    """The newest fits, newest first."""
    return [_fit_row(r) for r in conn.execute(
        f"SELECT {_FIT_COLUMNS} FROM predict_fits ORDER BY id DESC LIMIT ?", (limit,))]


def end_running_fits(conn: Connection, *, message: str, at: int) -> int:
    """Mark fits still `running` as `interrupted` (their process is gone); how many."""
    return int(conn.execute(
        "UPDATE predict_fits SET status = 'interrupted', message = ?, finished_at = ? "
        "WHERE status = 'running'", (message, at)).rowcount)


# -- the orders the models read ---------------------------------------------------------

def order_count(conn: Connection) -> int:
    """Orders people have sent, as the KPI overview's daily counters have them (cheap:
    a few rows a day) — enough to tell that a shop is too small for a fit yet."""
    row = conn.execute("SELECT coalesce(sum(count), 0) FROM track_daily "
                       "WHERE event = 'Order Completed'").fetchone()
    return int(row[0])


def order_states(conn: Connection, *, after: int,
                 limit: int) -> list[tuple[int, dict[str, Any]]]:
    """(profile id, state) of profiles above `after` whose state may hold orders, by id.

    The LIKE keeps the states without an "orders" key from being decoded at all (most
    profiles are visitors who never bought); a trait of that name lets a state through,
    and the caller looks at the orders themselves.
    """
    return [(int(pid), _loads(state)) for pid, state in conn.execute(
        "SELECT id, state FROM profiles WHERE id > ? AND state LIKE ? ORDER BY id LIMIT ?",
        (after, '%"orders"%', limit))]


def scan_ids(conn: Connection, *, after: int, limit: int) -> list[int]:
    """Profile ids above `after`, ascending (the chunks of a scan)."""
    return [int(r[0]) for r in conn.execute(
        "SELECT id FROM profiles WHERE id > ? ORDER BY id LIMIT ?", (after, limit))]


# -- scores -----------------------------------------------------------------------------

def existing_profiles(conn: Connection, profile_ids: Sequence[int]) -> set[int]:
    """Which of these profiles exist (not merged away or forgotten)."""
    out: set[int] = set()
    for chunk in chunks(sorted(set(profile_ids)), 500):
        marks = ",".join("?" * len(chunk))
        out.update(int(r[0]) for r in conn.execute(
            f"SELECT id FROM profiles WHERE id IN ({marks})", chunk))
    return out


def computed_scores(conn: Connection,
                    profile_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """{profile id: {computed name: value}} of the profiles that have scores."""
    out: dict[int, dict[str, Any]] = {}
    names = list(SCORE_COLUMNS.values())
    for chunk in chunks(sorted(set(profile_ids)), 500):
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
                f"SELECT profile_id, {_SELECT} FROM predict_scores "
                f"WHERE profile_id IN ({marks})", chunk):
            out[int(row[0])] = dict(zip(names, row[1:], strict=True))
    return out


def score_details(conn: Connection, profile_id: int) -> dict[str, Any] | None:
    """One profile's scores with their inputs and fit id, or None."""
    row = conn.execute(
        f"SELECT fit_id, inputs, {_SELECT} FROM predict_scores WHERE profile_id = ?",
        (profile_id,)).fetchone()
    if row is None:
        return None
    out = dict(zip(SCORE_COLUMNS.values(), row[2:], strict=True))
    out["fitId"] = int(row[0])
    out["inputs"] = json.loads(row[1])
    return out


def bands(conn: Connection,
          profile_ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
    """(stage, churn risk) now stored for each of these profiles that has scores."""
    out: dict[int, tuple[str, str | None]] = {}
    for chunk in chunks(sorted(set(profile_ids)), 500):
        marks = ",".join("?" * len(chunk))
        for pid, stage, risk in conn.execute(
                f"SELECT profile_id, stage, churn_risk FROM predict_scores "
                f"WHERE profile_id IN ({marks})", chunk):
            out[int(pid)] = (str(stage), None if risk is None else str(risk))
    return out


def put_scores(conn: Connection, fit_id: int,
               rows: Sequence[Mapping[str, Any]]) -> None:
    """Write scores (mappings keyed by predict_scores' columns plus profile_id and
    inputs), replacing what the profiles had."""
    columns = ["profile_id", "fit_id", *SCORE_COLUMNS, "inputs"]
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
    conn.executemany(
        f"INSERT INTO predict_scores ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT (profile_id) DO UPDATE SET {updates}",
        [(row["profile_id"], fit_id, *(row[c] for c in SCORE_COLUMNS),
          json.dumps(row["inputs"], separators=(",", ":"))) for row in rows])


def unscored_profiles(conn: Connection, fit_id: int) -> list[int]:
    """Profiles with scores a fit did not write (about to be dropped)."""
    return [int(r[0]) for r in conn.execute(
        "SELECT profile_id FROM predict_scores WHERE fit_id <> ?", (fit_id,))]


def delete_stale_scores(conn: Connection, fit_id: int) -> int:
    """Drop the scores a fit did not write (people without orders any more, or gone)."""
    return int(conn.execute("DELETE FROM predict_scores WHERE fit_id <> ?",
                            (fit_id,)).rowcount)


def delete_scores(conn: Connection, profile_ids: Iterable[int]) -> None:
    """Drop these profiles' scores (a merge, `kanal forget`)."""
    for chunk in chunks(sorted(set(profile_ids)), 500):
        marks = ",".join("?" * len(chunk))
        conn.execute(f"DELETE FROM predict_scores WHERE profile_id IN ({marks})", chunk)


def clear_scores(conn: Connection) -> None:
    """Drop every score (a rebuild gives profiles new ids)."""
    conn.execute("DELETE FROM predict_scores")


def score_counts(conn: Connection) -> dict[str, dict[str, int]]:
    """People per stage and per churn risk, as stored now (kept by store/score_counts.py)."""
    return score_counts_store.counts(conn)

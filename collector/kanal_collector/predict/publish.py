"""Writing a fit's scores: a chunk of people per transaction, with what follows from them.

Each chunk's transaction stores the people's new scores, writes Kanal's own events for
the stages and churn risks that changed (`Lifecycle Stage Changed`, `Churn Risk
Changed`, key kind `kanal`, so journeys can start on them), and re-tests the segments
that read scores for those people (their `Segment Entered` / `Exited` events too). A
person's scores, events and memberships so change together; a write lock is held for
one chunk at a time, so ingest goes on between chunks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..own_events import own_event
from ..profiles.segments import COMPUTED, Segment
from ..profiles.state import SCORES
from ..profiles.step import evaluate, load_definitions
from ..store import identities as identity_store
from ..store import predict as store
from ..store import profiles as profile_store
from ..store.connection import Connection
from ..store.db import transaction
from ..store.events import EventRow, append_events
from .data import DAY_MS
from .scores import ScoreTable

STAGE_CHANGED = "Lifecycle Stage Changed"
RISK_CHANGED = "Churn Risk Changed"
CHUNK = 500
"""People per transaction: the write lock is held for a few milliseconds at a time."""
_SEGMENT_NAMES = {name for name, value in COMPUTED.items() if value in SCORES}
"""The computed values of segment conditions that are predictive scores."""


@dataclass
class Published:
    """What writing the scores did."""

    scored: int = 0
    stage_events: int = 0
    risk_events: int = 0
    segment_changes: int = 0
    removed: int = 0


def score_segments(conn: Connection) -> list[Segment]:
    """The segments whose conditions read a predictive score."""
    return [s for s in load_definitions(conn) if s.computed_names() & _SEGMENT_NAMES]


def _number(value: Any) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def rows_of(table: ScoreTable, start: int = 0, stop: int | None = None
            ) -> list[dict[str, Any]]:
    """One predict_scores row per customer of the table (inputs included), for the
    customers [start, stop)."""
    s = table.summary
    columns = {name: values[start:stop].tolist() for name, values in (
        ("pid", s.profile_id), ("r", table.recency_score), ("f", table.frequency_score),
        ("m", table.monetary_score), ("p", table.p_active), ("e90", table.expected_90),
        ("e365", table.expected_365), ("value", table.predicted_value),
        ("next", table.next_order_at), ("historic", s.historic), ("orders", s.orders),
        ("x", s.x), ("first", s.first_day), ("last", s.last_day), ("T", s.T),
        ("recency", s.recency), ("valued", s.valued), ("mean", s.repeat_mean),
        ("spend", table.expected_spend))}
    c = columns
    stages, risks = table.stage[start:stop], table.churn_risk[start:stop]
    out = []
    for i in range(len(c["pid"])):
        next_at = _number(c["next"][i])
        out.append({
            "profile_id": c["pid"][i], "stage": stages[i],
            "churn_risk": risks[i], "recency_score": c["r"][i],
            "frequency_score": c["f"][i], "monetary_score": c["m"][i],
            "p_active": _number(c["p"][i]), "expected_90": _number(c["e90"][i]),
            "expected_365": _number(c["e365"][i]), "predicted_value": _number(c["value"][i]),
            "historic_value": round(c["historic"][i], 2),
            "next_order_at": None if next_at is None else int(next_at),
            "inputs": {
                "orders": c["orders"][i], "purchases": int(c["x"][i]) + 1,
                "repeatPurchases": int(c["x"][i]), "firstPurchase": c["first"][i] * DAY_MS,
                "lastPurchase": c["last"][i] * DAY_MS, "daysAsCustomer": int(c["T"][i]),
                "daysSinceLastPurchase": int(c["recency"][i]),
                "repeatPurchasesWithValue": int(c["valued"][i]),
                "averageRepeatValue": _number(c["mean"][i]),
                "expectedPurchaseValue": _number(c["spend"][i]),
            },
        })
    return out


def publish(conn: Connection, fit_id: int, table: ScoreTable, *,
            now_ms: int, stage_events: bool, risk_events: bool, segments: bool = True,
            renew: Callable[[], None] | None = None,
            progress: Callable[[int], None] | None = None) -> Published:
    """Store the table's scores chunk by chunk (see the module's docstring; each chunk's
    rows are made as it is written, so a million customers' rows never sit in memory at
    once), then drop the scores
    of people this fit did not score. `stage_events` / `risk_events`: whether changes
    become events (not when there was nothing to change from: a first fit, a rebuild);
    `segments`: whether to re-test segments (a rebuild computes them all afterwards)."""
    to_test = score_segments(conn) if segments else []
    source = profile_store.first_source(conn)
    done = Published()
    trigger = f"p{fit_id}"
    for start in range(0, len(table.summary), CHUNK):
        chunk = rows_of(table, start, start + CHUNK)
        with transaction(conn):
            pids = [r["profile_id"] for r in chunk]
            # A profile merged away or forgotten since it was read gets nothing.
            alive = store.existing_profiles(conn, pids)
            chunk = [r for r in chunk if r["profile_id"] in alive]
            before = store.bands(conn, [r["profile_id"] for r in chunk])
            store.put_scores(conn, fit_id, chunk)
            events = _change_events(conn, chunk, before, source, fit_id, now_ms,
                                    stage_events=stage_events, risk_events=risk_events,
                                    counts=done)
            if events:
                append_events(conn, events)
            if to_test:
                done.segment_changes += evaluate(conn, to_test, [r["profile_id"] for r in chunk],
                                                 now_ms, trigger=trigger)
        done.scored += len(chunk)
        if progress is not None:
            progress(len(chunk))
        if renew is not None:
            renew()
    with transaction(conn):
        stale = store.unscored_profiles(conn, fit_id)
        done.removed = store.delete_stale_scores(conn, fit_id)
        if to_test and stale:
            done.segment_changes += evaluate(conn, to_test, stale, now_ms, trigger=trigger)
    return done


def _change_events(conn: Connection, rows: Sequence[dict[str, Any]],
                   before: dict[int, tuple[str, str | None]], source: int | None,
                   fit_id: int, now_ms: int, *, stage_events: bool, risk_events: bool,
                   counts: Published) -> list[EventRow]:
    if source is None or not (stage_events or risk_events):
        return []
    changes: list[tuple[int, str, str | None, str, dict[str, Any]]] = []
    for row in rows:
        pid = row["profile_id"]
        old_stage, old_risk = before.get(pid, (None, None))
        if stage_events and row["stage"] != old_stage:
            changes.append((pid, STAGE_CHANGED, old_stage, row["stage"], {}))
            counts.stage_events += 1
        if risk_events and row["churn_risk"] is not None and row["churn_risk"] != old_risk:
            changes.append((pid, RISK_CHANGED, old_risk, row["churn_risk"],
                            {"probabilityActive": row["p_active"]}))
            counts.risk_events += 1
    if not changes:
        return []
    idents = identity_store.profiles_identities(conn, {c[0] for c in changes})
    out = []
    for pid, name, old, new, extra in changes:
        ids = idents.get(pid, [])
        kind = "stage" if name == STAGE_CHANGED else "risk"
        out.append(own_event(
            name=name, message_id=f"kanal-{kind}-{pid}-f{fit_id}", origin="server",
            properties={"from": old, "to": new, "profileId": pid, "fitId": fit_id, **extra},
            user_id=next((v for k, v in ids if k == "user_id"), None),
            anonymous_id=next((v for k, v in ids if k == "anonymous_id"), None),
            source_id=source, now_ms=now_ms))
    return out


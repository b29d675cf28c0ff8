"""A fit: read every customer's orders, fit the models, score everyone, publish.

Run by `kanal predict fit` and, on schedule, by `kanal serve` in a process of its own
(job.py), never on the request path. One fit at a time per database: the `predict`
lease row. The fit is recorded in predict_fits with the model version, the fit's date
(`as_of`: its "now") and, once done, its parameters, counts, distributions and
calibration. `rescore` recomputes the scores of the latest fit after `kanal profiles
rebuild` (which gives profiles new ids) with that fit's parameters and date.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..clock import Clock
from ..store import leases
from ..store import predict as store
from ..store.connection import Connection
from ..store.db import Database, transaction
from . import bgnbd, gammagamma
from .calibration import calibrate
from .data import DAY_MS, Customer, customer_from_state, summarize
from .errors import FitBusy, FitFailed
from .publish import publish
from .rfm import Edges
from .scores import (
    RISK_HIGH_BELOW,
    RISK_LOW_FROM,
    Models,
    ScoreTable,
    Sufficiency,
    Thresholds,
    fit_models,
    score,
)
from .settings import PredictSettings

log = logging.getLogger("kanal.predict")

MODEL_VERSION = "1"
"""Changes when the models, their inputs or the bands change meaning."""
LEASE = "predict"
LEASE_SECONDS = 300.0
READ_CHUNK = 5000
NOT_ENOUGH = "not enough data yet"

Progress = Callable[[str], None]


@dataclass
class FitOutcome:
    """What a fit did (also recorded in predict_fits)."""

    fit_id: int
    status: str
    message: str | None
    customers: int = 0
    record: dict[str, Any] = field(default_factory=dict)


def read_customers(conn: Connection, *, on_chunk: Callable[[int], None] | None = None
                   ) -> list[Customer]:
    """Every customer with an order, from the profile states (chunks of short reads, so
    the log's writers never wait for the scan)."""
    customers: list[Customer] = []
    after = 0
    while rows := store.order_states(conn, after=after, limit=READ_CHUNK):
        for pid, state in rows:
            customer = customer_from_state(pid, state)
            if customer is not None:
                customers.append(customer)
        after = rows[-1][0]
        if on_chunk is not None:
            on_chunk(len(rows))
    return customers


class _Lease:
    """The `predict` lease, renewed as the fit goes on."""

    def __init__(self, conn: Connection, clock: Clock, owner: str) -> None:
        self.conn, self.clock, self.owner = conn, clock, owner

    def take(self) -> None:
        if not leases.acquire(self.conn, LEASE, self.owner, self.clock.now(), LEASE_SECONDS):
            held = leases.holder(self.conn, LEASE)
            raise FitBusy(f"another fit is running on this database ({held[0] if held else '?'}"
                          "); wait for it to finish")

    def renew(self) -> None:
        if not leases.acquire(self.conn, LEASE, self.owner, self.clock.now(), LEASE_SECONDS):
            raise FitBusy("lost the predict lease to another process; run the fit again")

    def release(self) -> None:
        leases.release(self.conn, LEASE, self.owner)


def lease_owner(what: str) -> str:
    """A lease owner naming this process."""
    return f"{what}:{socket.gethostname()}:{os.getpid()}"


@contextmanager
def hold_predict_lease(conn: Connection, clock: Clock,
                       what: str) -> Iterator[Callable[[], None]]:
    """Hold the `predict` lease (no fit runs meanwhile); yields its renew function.
    FitBusy when a fit holds it."""
    lease = _Lease(conn, clock, lease_owner(what))
    lease.take()
    try:
        yield lease.renew
    finally:
        lease.release()


def run_fit(db: Database, settings: PredictSettings, clock: Clock, *,
            progress: Progress | None = None) -> FitOutcome:
    """Fit, score and publish; FitBusy when another fit runs, FitFailed when it fails
    (the failure is recorded, and the scores in use stay as they were)."""
    say = progress or (lambda text: None)
    # SQLite's default page cache: the fit reads the profiles once, in id order, and
    # writes its scores in chunks; a 64 MiB cache made it no faster at 1M events but its
    # process (job.py, beside `kanal serve`) peaked 15 MB higher, up to 64 MB at 10M (#18).
    conn = db.connect()
    lease = _Lease(conn, clock, lease_owner("fit"))
    try:
        lease.take()
        try:
            return _fit(conn, settings, clock, lease, say)
        finally:
            lease.release()
    finally:
        conn.close()


def _fit(conn: Connection, settings: PredictSettings, clock: Clock, lease: _Lease,
         say: Progress) -> FitOutcome:
    now_ms = int(clock.now() * 1000)
    previous = store.latest_fit(conn)
    with transaction(conn):
        # With the lease held no other fit runs: one still `running` lost its process.
        store.end_running_fits(conn, message="its process ended before it finished",
                               at=now_ms)
        fit_id = store.create_fit(conn, model_version=MODEL_VERSION, started_at=now_ms,
                                  as_of=now_ms)
    timings: dict[str, float] = {}
    try:
        started = time.perf_counter()
        customers = read_customers(conn, on_chunk=_every(10 * READ_CHUNK, "profiles read", say))
        timings["read"] = time.perf_counter() - started
        say(f"Read {len(customers)} customers' orders.")
        thresholds = Thresholds(settings.min_customers, settings.min_history_days,
                                settings.min_repeat_customers)
        started = time.perf_counter()
        summary = summarize(customers, now_ms // DAY_MS)
        models = fit_models(summary, thresholds)
        timings["fit"] = time.perf_counter() - started
        started = time.perf_counter()
        table = score(summary, models)
        timings["score"] = time.perf_counter() - started
        started = time.perf_counter()
        calibration = calibrate(customers, now_ms // DAY_MS, settings.holdout_days, thresholds)
        timings["calibrate"] = time.perf_counter() - started
        say(_fit_line(models))
        had_models = bool(previous and previous["record"].get("bgnbd"))
        started = time.perf_counter()
        published = publish(conn, fit_id, table, now_ms=now_ms,
                            stage_events=previous is not None,
                            risk_events=had_models, renew=lease.renew,
                            progress=_every(max(len(summary) // 10, 1), "people scored",
                                            say, of=len(summary)))
        timings["publish"] = time.perf_counter() - started
        record = _record(settings, thresholds, models, table, calibration.as_dict(), timings)
        record["published"] = {"scored": published.scored, "stageEvents": published.stage_events,
                               "riskEvents": published.risk_events,
                               "segmentChanges": published.segment_changes,
                               "removed": published.removed}
        enough = models.sufficiency.enough
        status = "done" if enough else "not_enough_data"
        message = ("; ".join(models.problems) or None) if enough else (
            f"{NOT_ENOUGH}: " + "; ".join(models.sufficiency.missing))
        with transaction(conn):
            store.finish_fit(conn, fit_id, status=status, message=message, record=record,
                             finished_at=int(clock.now() * 1000))
        say(f"Scored {published.scored} customers: {published.stage_events} stage and "
            f"{published.risk_events} churn-risk changes, {published.segment_changes} "
            "segment changes.")
        return FitOutcome(fit_id, status, message, len(summary), record)
    except BaseException as exc:
        text = "interrupted" if isinstance(exc, KeyboardInterrupt | SystemExit) else (
            f"{type(exc).__name__}: {exc}")
        with transaction(conn):
            store.finish_fit(conn, fit_id, status="failed", message=text, record={},
                             finished_at=int(clock.now() * 1000))
        if isinstance(exc, Exception) and not isinstance(exc, FitBusy):
            log.exception("predictive fit %s failed", fit_id)
            raise FitFailed(f"fit {fit_id} failed: {text}") from exc
        raise


def _every(step: int, what: str, say: Progress, *, of: int | None = None
           ) -> Callable[[int], None]:
    """A progress callback that says how far it got each `step` items."""
    done = 0
    mark = step

    def advance(n: int) -> None:
        nonlocal done, mark
        done += n
        if done >= mark:
            say(f"{done:,}{'' if of is None else f' of {of:,}'} {what}")
            mark = (done // step + 1) * step

    return advance


def _fit_line(models: Models) -> str:
    if not models.sufficiency.enough:
        return f"{NOT_ENOUGH}: " + "; ".join(models.sufficiency.missing)
    parts = []
    if models.bgnbd is not None:
        p = models.bgnbd.params
        parts.append(f"BG/NBD r={p.r:.4g} alpha={p.alpha:.4g} a={p.a:.4g} b={p.b:.4g}")
    if models.gamma_gamma is not None:
        g = models.gamma_gamma.params
        parts.append(f"Gamma-Gamma p={g.p:.4g} q={g.q:.4g} gamma={g.gamma:.4g}")
    return "Fitted " + "; ".join(parts + list(models.problems))


def _histogram(values: np.ndarray, *, low: float | None = None,
               high: float | None = None, bins: int = 10) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"edges": [], "counts": []}
    lo = float(finite.min()) if low is None else low
    hi = float(np.quantile(finite, 0.99)) if high is None else high
    if hi <= lo:
        hi = lo + 1.0
    counts, edges = np.histogram(np.clip(finite, lo, hi), bins=bins, range=(lo, hi))
    return {"edges": [round(float(e), 4) for e in edges], "counts": counts.tolist()}


def _record(settings: PredictSettings, thresholds: Thresholds, models: Models,
            table: ScoreTable, calibration: dict[str, Any],
            timings: dict[str, float]) -> dict[str, Any]:
    stages: dict[str, int] = {}
    for stage in table.stage:
        stages[stage] = stages.get(stage, 0) + 1
    risks: dict[str, int] = {}
    for risk in table.churn_risk:
        if risk is not None:
            risks[risk] = risks.get(risk, 0) + 1
    bg, gg = models.bgnbd, models.gamma_gamma
    return {
        "unit": "day", "currency": settings.currency,
        "thresholds": {"customers": thresholds.customers,
                       "historyDays": thresholds.history_days,
                       "repeatCustomers": thresholds.repeat_customers},
        "sufficiency": models.sufficiency.as_dict(),
        "bgnbd": None if bg is None else {**bg.params.as_dict(),
                                          "logLikelihood": bg.log_likelihood,
                                          "customers": bg.customers},
        "gammaGamma": None if gg is None else {**gg.params.as_dict(),
                                               "logLikelihood": gg.log_likelihood,
                                               "customers": gg.customers},
        "problems": list(models.problems),
        "rfm": models.edges.as_dict(),
        "riskBands": {"lowFrom": RISK_LOW_FROM, "highBelow": RISK_HIGH_BELOW},
        "counts": {"customers": len(table.summary), "stages": stages, "risks": risks},
        "distributions": {
            "probabilityActive": _histogram(table.p_active, low=0.0, high=1.0),
            "expectedOrders365d": _histogram(table.expected_365, low=0.0),
            "predictedValue": _histogram(table.predicted_value, low=0.0),
            "historicValue": _histogram(table.summary.historic, low=0.0),
        },
        "calibration": calibration,
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }


def models_of(record: dict[str, Any]) -> Models:
    """The models a fit recorded (for rescoring without a refit)."""
    bg = record.get("bgnbd")
    gg = record.get("gammaGamma")
    suff = record.get("sufficiency") or {}
    return Models(
        Sufficiency(int(suff.get("customers", 0)), int(suff.get("historyDays", 0)),
                    int(suff.get("repeatCustomers", 0)), tuple(suff.get("missing", ()))),
        Edges.from_dict(record["rfm"]),
        None if bg is None else bgnbd.BGNBDFit(
            bgnbd.BGNBD(bg["r"], bg["alpha"], bg["a"], bg["b"]), bg["logLikelihood"],
            bg["customers"], True, "recorded"),
        None if gg is None else gammagamma.GammaGammaFit(
            gammagamma.GammaGamma(gg["p"], gg["q"], gg["gamma"]), gg["logLikelihood"],
            gg["customers"], True, "recorded"),
        tuple(record.get("problems", ())))


def rescore(conn: Connection, *, progress: Callable[[int], None] | None = None) -> int:
    """Recompute the latest fit's scores from the profiles as they are now, with its
    parameters and its date, writing no events (a rebuild: nothing happened). Returns
    how many people were scored (0 before the first fit)."""
    latest = store.latest_fit(conn)
    if latest is None or not latest["record"].get("rfm"):
        return 0
    summary = summarize(read_customers(conn), int(latest["asOf"]) // DAY_MS)
    table = score(summary, models_of(latest["record"]))
    done = publish(conn, int(latest["id"]), table, now_ms=int(latest["asOf"]),
                   stage_events=False, risk_events=False, segments=False,
                   progress=progress)
    return done.scored

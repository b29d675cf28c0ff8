"""Per-person scores from the fitted models, and when there is enough data to fit them.

For each customer: RFM scores and the lifecycle stage (rfm.py); with the models,
the probability of being active, the churn risk band, expected purchases in the next
90 and 365 days, the predicted value of the next 365 days, and the expected date of the
next order. Historic value is the money of every purchase so far.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import bgnbd, gammagamma
from .data import DAY_MS, Summary
from .rfm import Edges, edges_for, stages
from .rfm import scores as rfm_scores

RISK_LOW_FROM = 0.8
"""P(active) from which a repeat customer's churn risk is low."""
RISK_HIGH_BELOW = 0.5
"""P(active) below which a repeat customer's churn risk is high (and no next order date
is given)."""
RISKS = ("low", "medium", "high")


@dataclass(frozen=True)
class Thresholds:
    """The least data the models are fitted on (`[predict]` min_* settings)."""

    customers: int = 200
    history_days: int = 90
    repeat_customers: int = 50


@dataclass(frozen=True)
class Sufficiency:
    """How much data there is, and what is missing for the models."""

    customers: int
    history_days: int
    repeat_customers: int
    missing: tuple[str, ...]

    @property
    def enough(self) -> bool:
        """True when every threshold is met."""
        return not self.missing

    def as_dict(self) -> dict[str, Any]:
        """For the fit's record."""
        return {"customers": self.customers, "historyDays": self.history_days,
                "repeatCustomers": self.repeat_customers, "missing": list(self.missing)}


def sufficiency(summary: Summary, thresholds: Thresholds) -> Sufficiency:
    """Count customers with orders, days of history and repeat customers against the
    thresholds; each one short is named in `missing`."""
    customers = len(summary)
    history = int(summary.as_of - summary.first_day.min()) if customers else 0
    repeat = int(np.count_nonzero(summary.x > 0))
    missing = []
    if customers < thresholds.customers:
        missing.append(f"{customers} customers with orders (need {thresholds.customers})")
    if history < thresholds.history_days:
        missing.append(f"{history} days of order history (need {thresholds.history_days})")
    if repeat < thresholds.repeat_customers:
        missing.append(f"{repeat} repeat customers (need {thresholds.repeat_customers})")
    return Sufficiency(customers, history, repeat, tuple(missing))


@dataclass(frozen=True)
class Models:
    """What was fitted on one summary (None where there was not enough data, or the
    fit failed: `problems` says why)."""

    sufficiency: Sufficiency
    edges: Edges
    bgnbd: bgnbd.BGNBDFit | None
    gamma_gamma: gammagamma.GammaGammaFit | None
    problems: tuple[str, ...] = ()


def fit_models(summary: Summary, thresholds: Thresholds) -> Models:
    """RFM edges always; BG/NBD and Gamma-Gamma when there is enough data."""
    enough = sufficiency(summary, thresholds)
    edges = edges_for(summary)
    if not enough.enough:
        return Models(enough, edges, None, None)
    problems = []
    bg: bgnbd.BGNBDFit | None = bgnbd.fit(summary.x, summary.t_x, summary.T)
    assert bg is not None
    if not bg.converged:
        problems.append(f"BG/NBD: {bg.message}")
        bg = None
    spenders = (summary.valued > 0) & (summary.repeat_mean > 0)
    gg: gammagamma.GammaGammaFit | None = None
    if np.count_nonzero(spenders) < thresholds.repeat_customers:
        problems.append(f"Gamma-Gamma: {np.count_nonzero(spenders)} repeat customers with "
                        f"order values (need {thresholds.repeat_customers})")
    else:
        gg = gammagamma.fit(summary.valued[spenders], summary.repeat_mean[spenders])
        if not gg.converged:
            problems.append(f"Gamma-Gamma: {gg.message}")
            gg = None
    return Models(enough, edges, bg, gg, tuple(problems))


@dataclass
class ScoreTable:
    """Every customer's scores, one entry each (NaN where a model is missing)."""

    summary: Summary
    recency_score: NDArray[np.int64]
    frequency_score: NDArray[np.int64]
    monetary_score: NDArray[np.int64]
    stage: list[str]
    p_active: NDArray[np.float64]
    churn_risk: list[str | None]
    expected_90: NDArray[np.float64]
    expected_365: NDArray[np.float64]
    expected_spend: NDArray[np.float64]
    predicted_value: NDArray[np.float64]
    next_order_at: NDArray[np.float64]
    """Epoch ms (NaN: none)."""
    extra: dict[str, Any] = field(default_factory=dict)


def score(summary: Summary, models: Models) -> ScoreTable:
    """Score every customer of `summary` with `models`."""
    r, f, m = rfm_scores(summary, models.edges)
    stage = stages(summary, r, f, m)
    n = len(summary)
    nan = np.full(n, np.nan)
    p_active, exp90, exp365, spend, value, next_at = (nan.copy() for _ in range(6))
    risk: list[str | None] = [None] * n
    if models.bgnbd is not None:
        params = models.bgnbd.params
        x, t_x, T = summary.x, summary.t_x, summary.T
        p_active = bgnbd.p_alive(params, x, t_x, T)
        exp90 = bgnbd.expected_purchases(params, 90.0, x, t_x, T)
        exp365 = bgnbd.expected_purchases(params, 365.0, x, t_x, T)
        wait = 1.0 / bgnbd.posterior_rate(params, x, T)
        next_at = np.where(p_active >= RISK_HIGH_BELOW,
                           np.round((summary.last_day + wait) * DAY_MS), np.nan)
        risk = churn_risks(p_active, x, r)
        if models.gamma_gamma is not None:
            spend = gammagamma.expected_spend(models.gamma_gamma.params, summary.valued,
                                              summary.repeat_mean)
            value = exp365 * spend
    return ScoreTable(summary, r, f, m, stage, p_active, risk, exp90, exp365, spend, value,
                      next_at)


def churn_risks(p_active: NDArray[np.float64], x: NDArray[np.float64],
                recency_score: NDArray[np.int64]) -> list[str | None]:
    """The churn risk band of each customer.

    A repeat customer's band comes from P(active): low from RISK_LOW_FROM, high below
    RISK_HIGH_BELOW, medium between. BG/NBD can't tell whether a customer with a single
    purchase has left (in the model a customer leaves only after a repeat purchase, so
    P(active) is 1): their band follows recency instead, R4–5 low, R3 medium, R1–2 high.
    """
    out: list[str | None] = []
    for p, repeats, rec in zip(p_active.tolist(), x.tolist(), recency_score.tolist(),
                               strict=True):
        if repeats > 0:
            out.append("low" if p >= RISK_LOW_FROM else
                       "medium" if p >= RISK_HIGH_BELOW else "high")
        else:
            out.append("low" if rec >= 4 else "medium" if rec == 3 else "high")
    return out

"""Calibration: fit on a training period, predict the holdout, compare with what happened.

The history up to `as_of - holdout` is the training period; the models are fitted on
it, and each customer's expected purchases in the holdout are compared with the
purchases they actually made there, grouped by the number of repeat purchases in the
training period (0, 1, …, 6, 7+), as in Fader, Hardie & Lee (2005), figure 4.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import bgnbd
from .data import Customer, holdout_purchases, summarize
from .scores import Thresholds, fit_models

GROUPS = 8
"""Rows of the table: 0 … 6 repeat purchases, then 7 or more."""


@dataclass(frozen=True)
class Calibration:
    """Predicted and actual holdout purchases per repeat purchases in training."""

    training_end: int
    """The training period's last day (epoch days)."""
    holdout_days: int
    rows: list[dict[str, Any]]
    """{repeat, customers, actual, predicted}: means per customer."""
    total_actual: float
    total_predicted: float
    params: dict[str, float] | None
    missing: tuple[str, ...] = ()
    """Why there is no table (not enough data in the training period, or no fit)."""

    def as_dict(self) -> dict[str, Any]:
        """As the fit's record, the admin API and `kanal predict calibrate --format json`
        give it."""
        return {"trainingEnd": self.training_end, "holdoutDays": self.holdout_days,
                "rows": self.rows, "totalActual": self.total_actual,
                "totalPredicted": self.total_predicted, "params": self.params,
                "missing": list(self.missing)}


def calibrate(customers: Sequence[Customer], as_of: int, holdout_days: int,
              thresholds: Thresholds) -> Calibration:
    """Fit on the days up to `as_of - holdout_days`, compare on the days after."""
    end = as_of - holdout_days
    training = summarize(customers, end)
    models = fit_models(training, thresholds)
    missing = models.sufficiency.missing
    if models.bgnbd is None:
        why = missing or tuple(p for p in models.problems if p.startswith("BG/NBD"))
        return Calibration(end, holdout_days, [], 0.0, 0.0, None, tuple(why))
    params = models.bgnbd.params
    predicted = bgnbd.expected_purchases(params, float(holdout_days), training.x,
                                         training.t_x, training.T)
    actual = holdout_purchases(customers, end, as_of, training.profile_id)
    group = np.minimum(training.x, GROUPS - 1).astype(np.int64)
    rows = []
    for g in range(GROUPS):
        mask = group == g
        count = int(np.count_nonzero(mask))
        rows.append({
            "repeat": f"{g}+" if g == GROUPS - 1 else str(g), "customers": count,
            "actual": float(actual[mask].mean()) if count else None,
            "predicted": float(predicted[mask].mean()) if count else None,
        })
    return Calibration(end, holdout_days, rows, float(actual.sum()), float(predicted.sum()),
                       params.as_dict())

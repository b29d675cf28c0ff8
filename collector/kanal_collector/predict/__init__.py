"""Predictive scores: who is about to leave, who will buy again, and what they are worth.

    data.py          customers' purchase days and values, from profile states
    rfm.py           recency / frequency / monetary scores and lifecycle stages
    bgnbd.py         BG/NBD: future purchases and P(active)               (scipy)
    gammagamma.py    Gamma-Gamma: spend per purchase                      (scipy)
    scores.py        per-person scores; the minimum data for the models   (scipy)
    calibration.py   fit on a training period, compare with the holdout   (scipy)
    fit.py           a fit: read, fit, score, publish; rescoring after a rebuild
    publish.py       scores, change events and segments, a chunk per transaction
    job.py           the fit's own process, started by …
    schedule.py      … the refit worker of `kanal serve`
    settings.py      `[predict]` in kanal.toml
    views.py         scores and fits as the API, the CLI and the dashboard show them
    errors.py        PredictError, FitBusy, FitFailed

The modules marked (scipy), and those that import them, are loaded only where a fit or
a scoring runs: in `kanal predict …`, `kanal profiles rebuild` and the fit's own
process, never in the serving process. So the public names are imported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import FitBusy, FitFailed, PredictError
    from .fit import rescore, run_fit
    from .schedule import PredictScheduler
    from .settings import PredictSettings
    from .views import overview_json, scores_json

__all__ = [
    "FitBusy",
    "FitFailed",
    "PredictError",
    "PredictScheduler",
    "PredictSettings",
    "overview_json",
    "rescore",
    "run_fit",
    "scores_json",
]

_WHERE = {
    "FitBusy": "errors", "FitFailed": "errors", "PredictError": "errors",
    "rescore": "fit", "run_fit": "fit", "PredictScheduler": "schedule",
    "PredictSettings": "settings", "overview_json": "views", "scores_json": "views",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        from importlib import import_module

        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Admin routes of predictive scores: the latest fit and a person's scores."""

from __future__ import annotations

from flask import Response, jsonify

from ..predict.settings import PredictSettings
from ..predict.views import fit_summary, overview_json, scores_json
from ..runtime import get_runtime
from ..store import predict as store
from .profiles import _profile_or_404
from .routes import _int_arg, admin_blueprint


@admin_blueprint.get("/predict")
def predict_overview() -> Response:
    """The latest fit (parameters, distributions, calibration), people per stage and
    churn risk, and the stage counts of recent fits."""
    runtime = get_runtime()
    settings = PredictSettings.from_config(runtime.config)
    return jsonify(overview_json(runtime.db.conn(), min_customers=settings.min_customers))


@admin_blueprint.get("/predict/fits")
def predict_fits() -> Response:
    """The newest fits, newest first (`limit` ≤ 1000)."""
    limit = _int_arg("limit", 50, low=1, high=1000) or 50
    return jsonify(fits=[fit_summary(f) for f in store.fits(get_runtime().db.conn(),
                                                            limit=limit)])


@admin_blueprint.get("/predict/profiles/<int:profile_id>")
def predict_profile(profile_id: int) -> Response:
    """One person's scores with their inputs and fit (`scores` null: not scored)."""
    pid = _profile_or_404(profile_id)
    return jsonify(profileId=pid, scores=scores_json(get_runtime().db.conn(), pid))
